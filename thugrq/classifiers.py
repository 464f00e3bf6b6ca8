"""Thug's classifiers for each analysis, built once per process rather than once per analysis.

`ThugAPI()` builds its eight classifiers anew, compiling every YARA rule each time (16 rule
sets: a good part of an analysis's cost). Here they are built once, with the operator's rules
(`add_rules`), and each analysis gets copies of its own (`classifiers`), sharing only the
compiled rules, which are read-only. A worker builds them before its first fork
(thugrq.warm), so every horse inherits them compiled.
"""

from __future__ import annotations

import copy
import importlib
import io
import logging
import os
from typing import Any

from thugrq.exceptions import InvalidInput

#: Thug's classifier kinds, by the name of the classifier's class (also its attribute on
#: Thug's logger, where Thug's code looks it up).
CLASSIFIERS = {
    "html": "HTMLClassifier",
    "js": "JSClassifier",
    "vbs": "VBSClassifier",
    "url": "URLClassifier",
    "sample": "SampleClassifier",
    "cookie": "CookieClassifier",
    "text": "TextClassifier",
    "image": "ImageClassifier",
}
_templates: dict[str, Any] | None = None
#: The operator's rule files added to Thug's, by kind (`add_rules`).
_extra_rules: dict[str, list[str]] = {}


def for_analysis() -> dict[str, Any]:
    """Thug's eight classifiers, by kind, for one analysis: copies of templates built once per
    process (rules compiled then), sharing only the compiled rules (yara.Rules, read-only).
    Called where Thug would build its own (`ThugAPI._ThugAPI__init_classifiers`), so Thug's
    configuration path is set by then."""
    import yara

    global _templates
    if _templates is None:
        _templates = {
            kind: getattr(importlib.import_module(f"thug.Classifier.{name}"), name)()
            for kind, name in CLASSIFIERS.items()
        }
        for kind, paths in _extra_rules.items():
            for path in paths:
                _templates[kind].add_rule(path)
        for template in _templates.values():
            for attribute, value in vars(template).items():
                if isinstance(value, yara.Rules):
                    setattr(template, attribute, _compact(value))
    return {
        kind: copy.deepcopy(
            template, {id(v): v for v in vars(template).values() if isinstance(v, yara.Rules)}
        )
        for kind, template in _templates.items()
    }


def install(thug: Any) -> None:
    """Give the ThugAPI instance `thug` its classifiers (`for_analysis`), where Thug's code
    looks them up: its `classifiers_map`, and the attributes of Thug's logger."""
    thug.classifiers_map = for_analysis()
    for kind, classifier in thug.classifiers_map.items():
        setattr(logging.getLogger("Thug"), CLASSIFIERS[kind], classifier)


def add_rules(kind: str, path: str) -> None:
    """Have every analysis in this process classify with the YARA rules in `path` too, besides
    Thug's own (the operator's rules: a worker's `--rules`; Thug's `--urlclassifier` and
    kin). Checked here, so that a worker refuses to start on a missing or broken file rather
    than run without it (Thug would only warn). Call it before the first analysis."""
    import yara

    if kind not in CLASSIFIERS:
        raise InvalidInput(f"unknown classifier {kind!r} for {path}: choose among {', '.join(CLASSIFIERS)}")
    if _templates is not None:
        raise RuntimeError("add_rules after the classifiers were built: call it before any analysis")
    try:
        yara.compile(filepath=path)
    except yara.Error as error:
        raise InvalidInput(f"{kind} rules {path}: {error}") from error
    _extra_rules.setdefault(kind, []).append(os.path.abspath(path))


def _compact(rules: Any) -> Any:
    """The same rules, loaded back from their saved form: a freshly compiled yara.Rules keeps
    its compiler's arenas (about 7 MiB, however small the rules), a loaded one only what the
    rules need. Thug's eight classifiers (16 rule sets) took 64 MiB compiled, 1.3 MiB loaded."""
    import yara

    saved = io.BytesIO()
    rules.save(file=saved)
    saved.seek(0)
    return yara.load(file=saved)
