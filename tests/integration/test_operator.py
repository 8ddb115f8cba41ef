"""The operator against the real control plane: workers, status, events, metrics, rules."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube import Cluster, Kubectl, manifest, wait_for
from monitors import apply, condition, get, monitor, series_of, status_when
from operator_proc import OperatorProcess
from prometheus_client.parser import text_string_to_metric_families

from modelmon.api.names import monitor_label, rule_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]



@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "operator.log").start()
    yield op
    assert op.stop() == 0, op.logs()[-3000:]


def test_lifecycle_status_events_rules_metrics(kubectl: Kubectl, namespace: str, data: Path,
                                               operator: OperatorProcess) -> None:
    doc = monitor("bc", data)
    started = time.monotonic()
    apply(kubectl, namespace, doc)
    st = status_when(kubectl, namespace, "bc", lambda s: s.get("lastCheck"), timeout=30)
    first_check = time.monotonic() - started
    assert first_check < 15, f"first check took {first_check:.1f}s"
    assert st["phase"] == "Degraded" and st["observedGeneration"] == 1
    assert {"mean_radius", "mean_area", "clinic"} <= set(st["drift"]["drifted"])
    assert st["performance"]["accuracy"] < 0.9
    assert condition(st, "Ready")["status"] == "True"
    assert condition(st, "AlertRulesReady")["reason"] == "RuleApplied"
    assert len(st["history"]) >= 1

    # kubectl get / describe as users read them.
    header, line = kubectl("get", "mm", "bc", "-n", namespace).stdout.splitlines()[:2]
    assert header.split() == ["NAME", "MODEL", "PHASE", "DRIFTED", "FINDINGS", "REASON",
                              "LAST", "CHECK", "AGE"]
    row = line.split()
    assert row[:6] == ["bc", "breast-cancer-lr", "Degraded",
                       f"{len(st['drift']['drifted'])}/{len(st['drift']['features'])}",
                       str(len(st["findings"])), "PerformanceDegraded"]
    events = wait_for(lambda: kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=bc")["items"],
        timeout=20, what="events")
    assert any(e["reason"] == "Degraded" and "Pending -> Degraded" in e["message"]
               for e in events)
    described = kubectl("describe", "mm", "bc", "-n", namespace).stdout
    conditions = described[described.index("Conditions:"):]
    assert "DataDrift" in conditions and "PerformanceDegraded" in conditions
    shown = described[described.index("\nEvents:"):]
    assert "Degraded" in shown and "Pending -> Degraded" in shown, shown

    # The PrometheusRule, owned by the monitor.
    uid = get(kubectl, namespace, "bc")["metadata"]["uid"]
    rule = kubectl.json("get", "prometheusrule", "modelmon-bc", "-n", namespace)
    assert rule["metadata"]["ownerReferences"][0]["uid"] == uid
    exprs = [r["expr"] for r in rule["spec"]["groups"][0]["rules"]]
    assert any(">= 0.3" in e for e in exprs)
    assert all(r["labels"]["team"] == "risk" for r in rule["spec"]["groups"][0]["rules"])

    # Metrics of this monitor.
    names = series_of(operator, namespace, "bc")
    assert {"modelmon_drift_statistic", "modelmon_drift_detected",
            "modelmon_dataset_drift_share", "modelmon_performance_metric",
            "modelmon_data_quality", "modelmon_last_check_timestamp_seconds",
            "modelmon_check_duration_seconds_bucket", "modelmon_monitor_phase"} <= names

    # A threshold change reaches the next status and the rule, without a restart.
    kubectl("patch", "mm", "bc", "-n", namespace, "--type=merge",
            "-p", manifest({"spec": {"drift": {"datasetDriftShare": 0.9}}}))
    st = status_when(kubectl, namespace, "bc", lambda s: s.get("observedGeneration") == 2,
                     timeout=30, what="generation 2 checked")
    assert not st["drift"]["datasetDrift"]
    rule = kubectl.json("get", "prometheusrule", "modelmon-bc", "-n", namespace)
    assert any(">= 0.9" in r["expr"] for r in rule["spec"]["groups"][0]["rules"])

    # Checks go on every interval.
    times = {h["time"] for h in st["history"]}
    st = status_when(kubectl, namespace, "bc", lambda s: len({h["time"] for h in s["history"]})
                     > len(times) + 1, timeout=40, what="two more scheduled checks")
    # The fleet's own figures: how late scheduled checks started, requests sent.
    fleet = {s.name: s for family in text_string_to_metric_families(operator.metrics())
             for s in family.samples if s.labels in ({}, {"method": "PATCH"})}
    assert fleet["modelmon_schedule_lateness_seconds_count"].value >= 2
    assert fleet["modelmon_kube_requests_total"].value >= len(st["history"])

    # Delete: worker stops, rule garbage-collected, series gone.
    kubectl("delete", "mm", "bc", "-n", namespace)
    wait_for(lambda: not kubectl.exists("prometheusrule", "modelmon-bc", "-n", namespace),
             timeout=60, what="PrometheusRule garbage-collected")
    wait_for(lambda: not series_of(operator, namespace, "bc"), timeout=10,
             what="series removed")
    # The worker has stopped: no monitor left, and no request sent over a whole interval.
    assert fleet_figure(operator, "modelmon_monitors") == 0
    patches = fleet_figure(operator, "modelmon_kube_requests_total", method="PATCH")
    time.sleep(12)  # more than the 10 s interval
    assert fleet_figure(operator, "modelmon_kube_requests_total", method="PATCH") == patches
    assert not series_of(operator, namespace, "bc")
    assert "Traceback" not in operator.logs()


def fleet_figure(operator: OperatorProcess, name: str, **labels: str) -> float:
    """One sample of the operator's own metrics."""
    return next(s.value for family in text_string_to_metric_families(operator.metrics())
                for s in family.samples if s.name == name and s.labels == labels)


def test_semantic_error_names_the_field_without_a_retry_storm(
        kubectl: Kubectl, namespace: str, data: Path, operator: OperatorProcess) -> None:
    doc = monitor("broken", data, columns={"features": ["mean_radius", "no_such_column"]})
    apply(kubectl, namespace, doc)
    st = status_when(kubectl, namespace, "broken", lambda s: s.get("phase") == "Failing")
    ready = condition(st, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.columns.features" in ready["message"] and "no_such_column" in ready["message"]
    time.sleep(12)
    st = get(kubectl, namespace, "broken")["status"]
    assert len(st["history"]) <= 3  # one check per 10 s interval, not a tight loop
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector",
                          "involvedObject.name=broken")["items"]
    assert sum(e["reason"] == "InvalidSpec" for e in events) == 1
    # Fixing the spec recovers at once.
    kubectl("patch", "mm", "broken", "-n", namespace, "--type=json", "-p",
            json.dumps([{"op": "remove", "path": "/spec/columns/features"}]))
    status_when(kubectl, namespace, "broken", lambda s: s.get("phase") == "Degraded",
                timeout=30, what="recovery")


def test_unreachable_source_backs_off(kubectl: Kubectl, namespace: str, data: Path,
                                      operator: OperatorProcess) -> None:
    """Retries 5 s, 10 s, 20 s ... after a source failure, well before the 10 min interval,
    with one Event for the episode; recovery at the next retry once the file is back."""
    doc = monitor("nosource", data, schedule={"interval": "10m"})
    doc["spec"]["current"]["source"]["url"] = str(data / "missing.csv")
    apply(kubectl, namespace, doc)
    st = status_when(kubectl, namespace, "nosource", lambda s: s.get("phase") == "Failing")
    ready = condition(st, "Ready")
    assert ready["reason"] == "SourceUnavailable" and "missing.csv not found" in ready["message"]
    assert condition(st, "SourceAvailable")["status"] == "False"
    st = status_when(kubectl, namespace, "nosource", lambda s: len(s.get("history", [])) >= 4,
                     timeout=60, what="three retries")
    times = [datetime.fromisoformat(h["time"]) for h in st["history"]]
    assert {h["reason"] for h in st["history"]} == {"SourceUnavailable"}
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert 4 <= gaps[0] < gaps[1] < gaps[2] < 60, gaps  # doubling, far below 10 min
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector",
                          "involvedObject.name=nosource")["items"]
    assert sum(e["reason"] == "SourceUnavailable" for e in events) == 1
    # The file appears: the next retry picks it up, long before the interval.
    shutil.copy(data / "current.csv", data / "missing.csv")
    status_when(kubectl, namespace, "nosource", lambda s: s.get("phase") == "Degraded",
                timeout=60, what="recovery after the source came back")


def test_restart_resumes_without_duplicate_history(
        cluster: Cluster, kubectl: Kubectl, namespace: str, data: Path, tmp_path: Path) -> None:
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op1.log").start()
    apply(kubectl, namespace, monitor("resume", data, schedule={"interval": "30s"}))
    st = status_when(kubectl, namespace, "resume", lambda s: s.get("history"))
    assert op.stop() == 0
    before = {c["type"]: c["lastTransitionTime"]
              for c in get(kubectl, namespace, "resume")["status"]["conditions"]}
    first = [h["time"] for h in st["history"]]
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op2.log").start()
    try:
        time.sleep(5)  # the restarted operator must not check again before the 30 s are due
        st = get(kubectl, namespace, "resume")["status"]
        assert [h["time"] for h in st["history"]] == first
        st = status_when(kubectl, namespace, "resume", lambda s: len(s["history"]) == 2,
                         timeout=45, what="the next scheduled check")
        times = [h["time"] for h in st["history"]]
        assert len(set(times)) == len(times)
        # Conditions kept their transition times across the restart: nothing changed.
        after = {c["type"]: c["lastTransitionTime"] for c in st["conditions"]}
        assert after == before, (before, after)
    finally:
        assert op.stop() == 0


def test_restart_keeps_series_until_the_next_check(
        cluster: Cluster, kubectl: Kubectl, namespace: str, data: Path, tmp_path: Path) -> None:
    """With a long interval the restarted operator checks again only when due; meanwhile it
    exports the stored status, so the last-success series (and the stale alert on it) and
    the drift figures do not vanish."""
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op1.log").start()
    apply(kubectl, namespace, monitor("long", data, schedule={"interval": "1h"}))
    st = status_when(kubectl, namespace, "long", lambda s: s.get("lastCheck"))
    before = {s.name: s.value for family in text_string_to_metric_families(op.metrics())
              for s in family.samples if s.labels.get("monitor") == "long"
              and s.name == "modelmon_last_check_timestamp_seconds"}
    assert op.stop() == 0
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op2.log").start()
    try:
        names = wait_for(lambda: series_of(op, namespace, "long"), timeout=15,
                         what="series restored from the stored status")
        assert {"modelmon_last_check_timestamp_seconds", "modelmon_dataset_drift_share",
                "modelmon_drift_detected", "modelmon_monitor_phase"} <= names
        after = {s.name: s.value for family in text_string_to_metric_families(op.metrics())
                 for s in family.samples if s.labels.get("monitor") == "long"
                 and s.name == "modelmon_last_check_timestamp_seconds"}
        # The same moment, as stored in the status (to the microsecond).
        assert after.keys() == before.keys() and all(
            after[k] == pytest.approx(before[k], abs=1e-5) for k in before)
        # No check ran: the history and the duration histogram say so.
        assert len(get(kubectl, namespace, "long")["status"]["history"]) == len(st["history"])
        assert "modelmon_check_duration_seconds_count" not in names
    finally:
        assert op.stop() == 0


def test_twenty_monitors_one_broken(kubectl: Kubectl, namespace: str, data: Path,
                                    operator: OperatorProcess) -> None:
    docs = [monitor(f"m{i:02d}", data) for i in range(19)]
    docs.append(monitor("m-broken", data, drift={"features": {"clinic": {"method": "ks"}}}))
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest(docs))

    def all_checked() -> list[dict[str, Any]] | None:
        items = kubectl.json("get", "mm", "-n", namespace)["items"]
        done = [i for i in items if (i.get("status") or {}).get("phase") not in (None, "Pending")]
        return items if len(done) == 20 else None

    items = wait_for(all_checked, timeout=90, what="20 monitors checked")
    phases = {i["metadata"]["name"]: i["status"]["phase"] for i in items}
    assert phases.pop("m-broken") == "Failing"
    assert set(phases.values()) == {"Degraded"}, phases
    broken = next(i for i in items if i["metadata"]["name"] == "m-broken")["status"]
    assert "spec.drift.features.clinic.method: column 'clinic' is categorical" in condition(
        broken, "Ready")["message"]


def test_kubectl_diff_sees_no_drift_after_the_operator_ran(
        kubectl: Kubectl, namespace: str, data: Path, operator: OperatorProcess,
        tmp_path: Path) -> None:
    # Client-side apply (kubectl, Argo CD's default) and server-side apply (Flux).
    for name, mode in (("gitops", []), ("gitops-ssa", ["--server-side"])):
        doc = monitor(name, data)
        doc["metadata"]["namespace"] = namespace
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        kubectl("apply", *mode, "-f", str(path))
        status_when(kubectl, namespace, name, lambda s: len(s.get("history", [])) >= 2,
                    timeout=40)
        done = kubectl("diff", *mode, "-f", str(path), check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    live = get(kubectl, namespace, "gitops")["metadata"]
    assert not live.get("finalizers")
    assert not [k for k in live.get("annotations", {}) if "kopf" in k]


def test_without_the_prometheusrule_crd_a_condition_says_so(
        cluster: Cluster, kubectl: Kubectl, namespace: str, data: Path,
        operator: OperatorProcess) -> None:
    crd = "prometheusrules.monitoring.coreos.com"
    saved = kubectl.json("get", "crd", crd)
    kubectl("delete", "crd", crd)
    try:
        apply(kubectl, namespace, monitor("norules", data))
        st = status_when(kubectl, namespace, "norules", lambda s: s.get("lastCheck"))
        rules = condition(st, "AlertRulesReady")
        assert rules["status"] == "False" and rules["reason"] == "PrometheusRuleCRDMissing"
        assert "prometheus-operator" in rules["message"]
        assert st["phase"] == "Degraded" and condition(st, "Ready")["status"] == "True"
    finally:
        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields",
                    "generation"):
            saved["metadata"].pop(key, None)
        saved.pop("status", None)
        subprocess.run([str(kubectl.binary), f"--kubeconfig={kubectl.kubeconfig}", "create",
                        "-f", "-"], input=json.dumps(saved), text=True, check=True,
                       capture_output=True)
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    # With the CRD back, the next check creates the rule.
    wait_for(lambda: kubectl.exists("prometheusrule", "modelmon-norules", "-n", namespace),
             timeout=30, what="rule created once the CRD is back")


def test_health_endpoints(operator: OperatorProcess) -> None:
    assert operator.health("/healthz") == (200, "ok\n")
    assert operator.health("/readyz") == (200, "ok\n")
    assert operator.health("/nope")[0] == 404
    assert "modelmon_event_loop_lag_seconds" in operator.metrics()


def test_a_slow_monitor_does_not_delay_the_others(
        kubectl: Kubectl, namespace: str, data: Path, operator: OperatorProcess) -> None:
    """Three sources answer after 25 s, more than the operator's 2 check workers; the other
    monitor keeps its 10 s schedule meanwhile (a slow source holds a thread, not a core)."""
    import http.server
    import threading

    release = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            release.wait(25)
            body = (data / "current.csv").read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert operator.workers == 2
        slow_names = [f"slow{i}" for i in range(3)]
        for name in slow_names:
            slow = monitor(name, data)
            slow["spec"]["current"]["source"]["url"] = \
                f"http://127.0.0.1:{server.server_address[1]}/current.csv"
            apply(kubectl, namespace, slow)
        apply(kubectl, namespace, monitor("fast", data))
        st = status_when(kubectl, namespace, "fast", lambda s: len(s.get("history", [])) >= 2,
                         timeout=24, what="two checks of the fast monitor")
        assert st["phase"] == "Degraded"
        for name in slow_names:
            assert not (get(kubectl, namespace, name).get("status") or {}).get("lastCheck")
        assert operator.health("/healthz")[0] == 200
        release.set()
        for name in slow_names:
            status_when(kubectl, namespace, name, lambda s: s.get("lastCheck"), timeout=30)
    finally:
        release.set()
        server.shutdown()


def test_a_rule_deleted_or_edited_by_hand_is_restored(
        cluster: Cluster, kubectl: Kubectl, namespace: str, data: Path, tmp_path: Path) -> None:
    op = OperatorProcess(cluster.kubeconfig, [namespace], tmp_path / "op.log",
                         extra_env={"MODELMON_RULES_RESYNC": "5s"}).start()
    try:
        apply(kubectl, namespace, monitor("keep", data))
        wait_for(lambda: kubectl.exists("prometheusrule", "modelmon-keep", "-n", namespace),
                 timeout=30, what="rule created")
        original = kubectl.json("get", "prometheusrule", "modelmon-keep", "-n",
                                namespace)["spec"]
        kubectl("delete", "prometheusrule", "modelmon-keep", "-n", namespace)
        wait_for(lambda: kubectl.exists("prometheusrule", "modelmon-keep", "-n", namespace),
                 timeout=40, what="deleted rule restored")
        kubectl("patch", "prometheusrule", "modelmon-keep", "-n", namespace, "--type=merge",
                "-p", manifest({"spec": {"groups": [{"name": "edited", "rules": []}]}}))

        def restored() -> bool:
            live = kubectl.json("get", "prometheusrule", "modelmon-keep", "-n", namespace)
            return bool(live["spec"] == original)
        wait_for(restored, timeout=40, what="edited rule restored")
        assert "changed outside modelmon" in op.logs()
    finally:
        assert op.stop() == 0


def test_long_names_get_one_valid_rule_each(kubectl: Kubectl, namespace: str, data: Path,
                                            operator: OperatorProcess) -> None:
    """Issue 14: two monitors whose 252-character names share their first 244 characters
    got ONE PrometheusRule, and a name whose first 63 characters end in "." got HTTP 422
    (its label value cut there). Now: one valid rule each, owned by its monitor, and a rule
    another monitor controls is reported, never taken over."""
    shared = "long-" + "m" * 239
    twins = [shared + "-aaaaaaa", shared + "-bbbbbbb"]
    dotted = "a" * 62 + ".b" + "c" * 40
    assert len(shared) == 244 and {len(n) for n in twins} == {252} and dotted[62] == "."
    names = [*twins, dotted]
    for name in names:
        apply(kubectl, namespace, monitor(name, data))
    for name in names:
        st = status_when(kubectl, namespace, name,
                         lambda s: any(c["type"] == "AlertRulesReady" for c in
                                       s.get("conditions") or []), timeout=60)
        assert condition(st, "AlertRulesReady")["reason"] == "RuleApplied", st["conditions"]
    rules = kubectl.json("get", "prometheusrule", "-n", namespace)["items"]
    assert len(rules) == 3
    for rule in rules:
        (owner,) = rule["metadata"]["ownerReferences"]
        name = owner["name"]
        assert owner["uid"] == get(kubectl, namespace, name)["metadata"]["uid"]
        assert rule["metadata"]["name"] == rule_name(name)
        assert len(rule["metadata"]["name"]) <= 253
        assert rule["metadata"]["labels"]["modelmon.io/monitor"] == monitor_label(name)
        # Alert labels are Prometheus labels: the monitor's full name, uncut.
        assert all(r["labels"]["monitor"] == name for r in rule["spec"]["groups"][0]["rules"])
    assert {r["metadata"]["ownerReferences"][0]["name"] for r in rules} == set(names)
    # Events about a 252-character monitor are posted (their generated names fit too).
    wait_for(lambda: kubectl.json("get", "events", "-n", namespace, "--field-selector",
                                  f"involvedObject.name={twins[0]}")["items"],
             timeout=20, what="events of a long-named monitor")

    # A rule name already controlled by another monitor: reported, not taken over.
    first = get(kubectl, namespace, twins[0])["metadata"]
    kubectl("apply", "-n", namespace, "-f", "-", input=manifest({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": rule_name("taken"), "ownerReferences": [{
            "apiVersion": "modelmon.io/v1alpha1", "kind": "ModelMonitor",
            "name": twins[0], "uid": first["uid"], "controller": True}]},
        "spec": {"groups": []}}))
    apply(kubectl, namespace, monitor("taken", data))
    st = status_when(kubectl, namespace, "taken",
                     lambda s: any(c["type"] == "AlertRulesReady" for c in
                                   s.get("conditions") or []), timeout=60)
    rules_ready = condition(st, "AlertRulesReady")
    assert rules_ready["status"] == "False" and rules_ready["reason"] == "RuleNameTaken"
    assert f"controlled by ModelMonitor {twins[0]}" in rules_ready["message"]
    kept = kubectl.json("get", "prometheusrule", rule_name("taken"), "-n", namespace)
    assert kept["metadata"]["ownerReferences"][0]["uid"] == first["uid"]
    assert kept["spec"] == {"groups": []}


def test_the_operator_uses_a_config_map_only_once_it_is_labeled(
        kubectl: Kubectl, namespace: str, data: Path, operator: OperatorProcess) -> None:
    """`modelmon run` (default policy) refuses an unlabeled ConfigMap source, saying which
    field and which label; once its owner labels it, the next check uses it."""
    kubectl("create", "configmap", "bc-reference", "-n", namespace,
            f"--from-file=reference.csv={data / 'reference.csv'}")
    doc = monitor("cm", data)
    doc["spec"]["reference"]["source"] = {"configMap": {"name": "bc-reference",
                                                        "key": "reference.csv"}}
    apply(kubectl, namespace, doc)
    st = status_when(kubectl, namespace, "cm", lambda s: s.get("phase") == "Failing")
    ready = condition(st, "Ready")
    assert ready["reason"] == "SourceUnavailable", ready
    assert ready["message"].startswith(
        f"spec.reference.source.configMap: ConfigMap {namespace}/bc-reference does not exist "
        "or is not labeled modelmon.io/use=true"), ready["message"]
    assert "kubectl label configmap" in ready["message"]
    assert "mean_radius" not in json.dumps(st)  # nothing of the refused ConfigMap
    kubectl("label", "configmap", "bc-reference", "-n", namespace, "modelmon.io/use=true")
    st = status_when(kubectl, namespace, "cm", lambda s: s.get("phase") == "Degraded",
                     timeout=60, what="the check with the labeled ConfigMap")
    assert st["lastCheck"]["referenceRows"] == 200
