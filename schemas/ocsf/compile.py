"""Compile one OCSF event class into a JSON Schema (draft 2020-12).

Written for this project; reads the data files of a checkout of the public
OCSF schema repository (github.com/ocsf/ocsf-schema, Apache-2.0), never its
code, and writes a self-contained JSON Schema with every object the class can
reach under ``$defs``:

    git clone --depth 1 --branch 1.8.0 https://github.com/ocsf/ocsf-schema /tmp/ocsf-schema
    python schemas/ocsf/compile.py /tmp/ocsf-schema \
        --class detection_finding --commit "$(git -C /tmp/ocsf-schema rev-parse HEAD)" \
        > schemas/ocsf/1.8.0/detection_finding.schema.json

Output is deterministic (sorted keys, two-space indent): compiling the same
release again gives the same bytes, so a diff shows what a new release changed.

How the OCSF metaschema becomes JSON Schema (see README.md beside this file):

- An event class or object is assembled the way OCSF does: ``$include``d files
  (profiles) are merged into ``attributes``, then the ``extends`` chain, then
  each attribute's missing keys come from ``dictionary.json``. Every merge
  keeps what the more specific definition says (also an explicit ``null``, as
  in ``"profile": null``, which takes an attribute out of its profile) and
  adds what it lacks; enum members merge the same way.
- ``requirement: required`` becomes ``required``; ``constraints.at_least_one``
  an ``anyOf`` of ``required``; ``constraints.just_one`` a ``oneOf``.
- Every object is closed (``additionalProperties: false``), except the generic
  ``object`` type, which has no attributes and is open (``unmapped``).
- Scalar types follow ``dictionary.json`` ``types``: ``string_t`` string,
  ``integer_t``/``long_t`` integer, ``float_t`` number, ``boolean_t`` boolean,
  ``json_t`` any JSON; a derived type adds its ``regex`` (``pattern``),
  ``max_len`` (``maxLength``) and ``range`` (``minimum``/``maximum``).
- An enum becomes a ``oneOf`` of ``{"const": value, "title": caption}``.
- ``class_uid``, ``category_uid`` and ``type_uid`` are computed as OCSF does
  (category uid x 1000 + class uid; class uid x 100 + activity id).
- Profiles: an attribute that belongs to a profile is never ``required``. At
  the top of the class, using one requires ``metadata.profiles`` to name its
  profile, and naming a profile requires that profile's required attributes.
  Inside objects, profile attributes are allowed (a nested object cannot see
  ``metadata``). The ``datetime`` profile's generated ``*_dt`` twins are not
  produced. Extensions are not applied.
- ``@deprecated`` attributes stay valid and are marked ``deprecated: true``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://schemas.access-watch.internal/ocsf"
BASE_TYPES = {
    "string_t": {"type": "string"},
    "integer_t": {"type": "integer"},
    "long_t": {"type": "integer"},
    "float_t": {"type": "number"},
    "boolean_t": {"type": "boolean"},
    "json_t": {},
}
OTHER = "99"

Defn = dict[str, Any]


class CompileError(Exception):
    """The repository lacks something the class needs, or holds something unexpected."""


def _read(path: Path) -> Defn:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CompileError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise CompileError(f"{path}: not a JSON object")
    return data


def merge_missing(left: dict[str, Any], right: dict[str, Any]) -> None:
    """Add to ``left`` what only ``right`` has, recursively; ``left`` wins on conflicts.

    A key present in ``left`` with value ``None`` counts as present.
    """
    for key, value in right.items():
        if key not in left:
            left[key] = copy.deepcopy(value)
        elif isinstance(left[key], dict) and isinstance(value, dict):
            merge_missing(left[key], value)
        elif isinstance(left[key], list) and isinstance(value, list):
            left[key] = left[key] + [v for v in value if v not in left[key]]


class Repo:
    """The data files of one OCSF schema release."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = str(_read(root / "version.json")["version"])
        dictionary = _read(root / "dictionary.json")
        self.dictionary: dict[str, Defn] = dictionary["attributes"]
        self.types: dict[str, Defn] = dictionary["types"]["attributes"]
        self.categories: dict[str, Defn] = _read(root / "categories.json")["attributes"]
        self.objects = {d["name"]: d for d in map(_read, sorted(root.glob("objects/*.json")))}
        self.events = {d["name"]: d for d in map(_read, sorted(root.glob("events/**/*.json")))}
        self._resolved: dict[tuple[str, str], Defn] = {}

    def _include(self, ref: str) -> Defn:
        path = self.root / ref
        if not path.is_file():
            raise CompileError(f"$include {ref!r}: no such file in {self.root}")
        data = _read(path)
        attrs: dict[str, Defn] = copy.deepcopy(data.get("attributes", {}))
        if data.get("meta") == "profile":
            for attr in attrs.values():
                attr.setdefault("profile", data["name"])
                merge_missing(attr, data.get("annotations", {}))
        return attrs

    def resolve(self, kind: str, name: str) -> Defn:
        """The event class or object ``name`` with includes, ``extends`` and dictionary applied."""
        key = (kind, name)
        if key in self._resolved:
            return self._resolved[key]
        table = self.events if kind == "event" else self.objects
        if name not in table:
            raise CompileError(f"no {kind} named {name!r}")
        defn = copy.deepcopy(table[name])
        attrs: dict[str, Defn] = defn.setdefault("attributes", {})
        includes: Any = attrs.pop("$include", [])
        for ref in [includes] if isinstance(includes, str) else includes:
            included = self._include(ref)
            merge_missing(attrs, included)
        if "extends" in defn:
            base = self.resolve(kind, defn["extends"])
            merge_missing(attrs, base["attributes"])
            for field in ("category", "profiles", "constraints"):
                if field in base and field not in defn:
                    defn[field] = copy.deepcopy(base[field])
                elif field == "profiles" and field in base:
                    defn[field] = sorted(set(defn[field]) | set(base[field]))
        self._resolved[key] = defn
        return defn

    def observable_types(self) -> dict[str, Defn]:
        """The ``observable.type_id`` enum, built as OCSF builds it from every definition.

        Dictionary attributes and data types that carry an ``observable`` id come
        first (caption: theirs); then objects (caption: the object's); then
        attributes of objects and event classes (caption ``"<Caption> Object: <name>"``).
        An id already present keeps its first caption.
        """
        enum: dict[str, Defn] = copy.deepcopy(
            self.objects["observable"]["attributes"]["type_id"]["enum"]
        )
        for table in (self.dictionary, self.types):
            for spec in table.values():
                if "observable" in spec:
                    enum[str(spec["observable"])] = {"caption": spec["caption"]}
        for label, defns in (("Object", self.objects), ("Event", self.events)):
            for defn in defns.values():
                if label == "Object" and "observable" in defn:
                    enum.setdefault(str(defn["observable"]), {"caption": defn["caption"]})
                for attr_name, attr in defn.get("attributes", {}).items():
                    if isinstance(attr, dict) and "observable" in attr:
                        caption = f"{defn['caption']} {label}: {attr_name}"
                        enum.setdefault(str(attr["observable"]), {"caption": caption})
        return enum

    def attribute(self, owner: Defn, name: str) -> Defn:
        """One attribute of a resolved definition, completed from the dictionary."""
        attr: Defn = copy.deepcopy(owner["attributes"][name])
        if name not in self.dictionary:
            raise CompileError(f"{owner['name']}.{name}: not in dictionary.json")
        merge_missing(attr, self.dictionary[name])
        return attr


class Compiler:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.defs: dict[str, Defn] = {}
        self._pending: list[str] = []

    # -- scalar and object types ------------------------------------------
    def _scalar(self, type_name: str) -> Defn:
        schema: Defn = {}
        seen = type_name
        while seen not in BASE_TYPES:
            spec = self.repo.types.get(seen)
            if spec is None:
                raise CompileError(f"unknown data type {seen!r}")
            if "regex" in spec and "pattern" not in schema:
                schema["pattern"] = spec["regex"]
            if "max_len" in spec and "maxLength" not in schema:
                schema["maxLength"] = spec["max_len"]
            if "range" in spec and "minimum" not in schema:
                schema["minimum"], schema["maximum"] = spec["range"]
            seen = spec["type"]
        return {**BASE_TYPES[seen], **schema}

    def _ref(self, object_name: str) -> Defn:
        if object_name == "object":
            return {"type": "object"}
        if object_name not in self.defs and object_name not in self._pending:
            self._pending.append(object_name)
        return {"$ref": f"#/$defs/{object_name}"}

    def _attribute(self, owner: Defn, name: str, computed: dict[str, Defn]) -> Defn:
        attr = self.repo.attribute(owner, name)
        type_name = attr["type"]
        schema: Defn
        if name in computed:
            schema = {"type": "integer", "oneOf": _enum_members(computed[name], int)}
        elif type_name in self.repo.types or type_name in BASE_TYPES:
            schema = self._scalar(type_name)
            if "enum" in attr:
                cast = int if schema.get("type") == "integer" else str
                schema["oneOf"] = _enum_members(attr["enum"], cast)
        elif type_name in self.repo.objects:
            schema = self._ref(type_name)
        else:
            raise CompileError(f"{owner['name']}.{name}: unknown type {type_name!r}")
        if attr.get("is_array"):
            schema = {"type": "array", "items": schema}
        out: Defn = {"title": attr.get("caption", name), **schema}
        if "@deprecated" in attr:
            out["deprecated"] = True
        return out

    def _body(self, defn: Defn, computed: dict[str, Defn] | None = None) -> Defn:
        computed = computed or {}
        properties: dict[str, Defn] = {}
        required: list[str] = []
        for name in sorted(defn["attributes"]):
            properties[name] = self._attribute(defn, name, computed)
            attr = defn["attributes"][name]
            if attr.get("requirement") == "required" and not attr.get("profile"):
                required.append(name)
        body: Defn = {"type": "object", "title": defn.get("caption", defn["name"])}
        if properties:
            body["properties"] = properties
            body["additionalProperties"] = False
        if required:
            body["required"] = required
        constraints = defn.get("constraints", {})
        if "at_least_one" in constraints:
            body["anyOf"] = [{"required": [n]} for n in sorted(constraints["at_least_one"])]
        if "just_one" in constraints:
            names = sorted(constraints["just_one"])
            body["oneOf"] = [
                {"required": [n], "not": {"anyOf": [{"required": [o]} for o in names if o != n]}}
                for n in names
            ]
        if "@deprecated" in defn:
            body["deprecated"] = True
        return body

    def _profile_rules(self, defn: Defn) -> list[Defn]:
        """At the class level: a profile's attributes need the profile named in metadata."""
        by_profile: dict[str, list[str]] = {}
        for name, attr in defn["attributes"].items():
            if attr.get("profile"):
                by_profile.setdefault(attr["profile"], []).append(name)
        rules: list[Defn] = []
        for profile in sorted(by_profile):
            names = sorted(by_profile[profile])
            named = {
                "required": ["metadata"],
                "properties": {
                    "metadata": {
                        "required": ["profiles"],
                        "properties": {"profiles": {"contains": {"const": profile}}},
                    }
                },
            }
            rules.append(
                {
                    "$comment": f"profile {profile}",
                    "if": {"anyOf": [{"required": [n]} for n in names]},
                    "then": named,
                }
            )
            needed = [n for n in names if defn["attributes"][n].get("requirement") == "required"]
            if needed:
                rules.append(
                    {
                        "$comment": f"profile {profile}: its required attributes",
                        "if": named,
                        "then": {"required": needed},
                    }
                )
        return rules

    def compile_class(self, class_name: str, commit: str | None) -> Defn:
        repo = self.repo
        defn = repo.resolve("event", class_name)
        category = repo.categories[defn["category"]]
        class_uid = category["uid"] * 1000 + defn["uid"]
        caption = defn["caption"]
        activities = repo.attribute(defn, "activity_id")["enum"]
        computed = {
            "category_uid": {str(category["uid"]): {"caption": category["caption"]}},
            "class_uid": {str(class_uid): {"caption": caption}},
            "type_uid": {
                str(class_uid * 100 + int(k)): {"caption": f"{caption}: {v['caption']}"}
                for k, v in activities.items()
            },
        }
        schema: Defn = {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"{ID_BASE}/{repo.version}/{class_name}.schema.json",
            "$comment": (
                f"OCSF {repo.version} class {class_name} (class_uid {class_uid}), compiled by "
                "schemas/ocsf/compile.py from github.com/ocsf/ocsf-schema"
                + (f" at commit {commit}" if commit else "")
                + "; OCSF is licensed under the Apache License 2.0."
            ),
            "description": _plain(defn.get("description", "")),
            **self._body(defn, computed),
        }
        rules = self._profile_rules(defn)
        if rules:
            schema["allOf"] = rules
        while self._pending:
            name = self._pending.pop(0)
            extra = {"type_id": repo.observable_types()} if name == "observable" else None
            body = self._body(repo.resolve("object", name), extra)
            self.defs[name] = body
        schema["$defs"] = dict(sorted(self.defs.items()))
        return schema


def _enum_members(enum: dict[str, Defn], cast: type) -> list[Defn]:
    members = [{"const": cast(k), "title": v.get("caption", k)} for k, v in enum.items()]
    return sorted(members, key=lambda m: (isinstance(m["const"], str), m["const"]))


def _plain(text: str) -> str:
    """Descriptions in OCSF carry a little HTML; keep the words only."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="checkout of github.com/ocsf/ocsf-schema")
    parser.add_argument("--class", dest="class_name", default="detection_finding")
    parser.add_argument("--commit", default=None, help="commit of the checkout, for provenance")
    args = parser.parse_args(argv)
    try:
        schema = Compiler(Repo(args.repo)).compile_class(args.class_name, args.commit)
    except (CompileError, KeyError) as exc:
        print(f"compile: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
