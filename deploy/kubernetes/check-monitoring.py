#!/usr/bin/env python3
"""Checks the PodMonitor and PrometheusRule against prometheus-operator's
CRD schemas, refusing any field the schema does not name.

The schemas come as typed models generated from the operator's CRDs, in the
pinned PyPI packages `cloudcoil-models-prometheus-operator==0.80.1.0` (the
operator's v0.80.1 CRDs) and `cloudcoil==0.6.0`. Their models ignore unknown
fields, as the API server's default does; this check makes every model refuse
them, so a misspelt field (`podMetricEndpoints`, `pathh`, `exprr`) fails here
instead of being dropped silently by the cluster.

Prints one line per document, and each error; exits 1 if there is any.
Usage: check-monitoring.py podmonitor.yaml prometheusrule.yaml
"""
import sys

import yaml

try:
    import cloudcoil.pydantic
except ImportError:
    sys.exit("check-monitoring.py needs: pip install cloudcoil==0.6.0 "
             "cloudcoil-models-prometheus-operator==0.80.1.0")

# Every model class takes its config from this base when it is defined, so
# this must come before the models are imported.
cloudcoil.pydantic.BaseModel.model_config["extra"] = "forbid"

import pydantic  # noqa: E402
from cloudcoil.models.prometheus_operator import v1  # noqa: E402

KINDS = {"PodMonitor": v1.PodMonitor, "PrometheusRule": v1.PrometheusRule}


def check(path):
    failed = False
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if doc is None:
                continue
            kind = doc.get("kind")
            name = (doc.get("metadata") or {}).get("name", "?")
            model = KINDS.get(kind)
            if model is None:
                print(f"{path}: {kind}/{name}: not a kind this check knows "
                      f"({', '.join(KINDS)})")
                failed = True
                continue
            try:
                model.model_validate(doc)
            except pydantic.ValidationError as e:
                failed = True
                for err in e.errors():
                    where = ".".join(str(p) for p in err["loc"])
                    print(f"{path}: {kind}/{name}: {where}: {err['msg']}")
                continue
            print(f"{path}: {kind}/{name} matches the CRD schema")
    return failed


def main(paths):
    if not paths:
        sys.exit(__doc__)
    failed = [check(p) for p in paths]
    sys.exit(1 if any(failed) else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
