#!/usr/bin/env python3
"""Checks the Deployment of a service built on `supervised`:
- Kubernetes' restricted Pod Security Standard
  (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
  and a memory limit on every container;
- the probes where they belong: liveness on /admin/health, readiness on
  /admin/ready allowing one slow answer, and the startup probe on
  /admin/ready, which says "starting" until every loop with a tick has
  beaten once (/admin/health answers 200 before that, so a startup probe
  there protects nothing).
Prints each violation and exits 1 if there is any.
Usage: check-deployment.py deployment.yaml
"""
import sys

import yaml

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}


def check(doc):
    bad = []
    pod = doc["spec"]["template"]["spec"]
    pod_sc = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            bad.append(f"pod: {field} must not be true")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            bad.append(f"volume {volume['name']}: type {sorted(kinds)} is not allowed")
    containers = (pod.get("initContainers") or []) + (pod.get("containers") or [])
    for c in containers:
        name = c["name"]
        sc = c.get("securityContext") or {}
        def either(key):
            return sc.get(key, pod_sc.get(key))
        if sc.get("privileged"):
            bad.append(f"{name}: privileged must not be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{name}: capabilities.drop must include ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: only NET_BIND_SERVICE may be added")
        if either("runAsNonRoot") is not True:
            bad.append(f"{name}: runAsNonRoot must be true")
        if either("runAsUser") == 0:
            bad.append(f"{name}: runAsUser must not be 0")
        seccomp = (either("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile.type must be RuntimeDefault or Localhost")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                bad.append(f"{name}: hostPort must not be set")
        if not ((c.get("resources") or {}).get("limits") or {}).get("memory"):
            bad.append(f"{name}: a memory limit is required")
    for c in pod.get("containers") or []:
        bad += probes(c)
    return bad


def path(probe):
    return ((probe or {}).get("httpGet") or {}).get("path")


def probes(c):
    bad = []
    name = c["name"]
    if path(c.get("livenessProbe")) != "/admin/health":
        bad.append(f"{name}: livenessProbe must GET /admin/health")
    readiness = c.get("readinessProbe") or {}
    if path(readiness) != "/admin/ready":
        bad.append(f"{name}: readinessProbe must GET /admin/ready")
    if readiness.get("failureThreshold", 3) < 2:
        bad.append(f"{name}: readinessProbe.failureThreshold below 2 drops the pod on one slow answer")
    if path(c.get("startupProbe")) != "/admin/ready":
        bad.append(f"{name}: startupProbe must GET /admin/ready (/admin/health is 200 before any loop beats)")
    return bad


def main():
    with open(sys.argv[1]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "Deployment"]
    if not docs:
        print(f"{sys.argv[1]}: no Deployment")
        return 1
    bad = [v for d in docs for v in check(d)]
    for v in bad:
        print(v)
    if not bad:
        print(f"{sys.argv[1]}: restricted, probes in place")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
