"""Bad input: every invalid spec fails with an actionable message at the exact file:line.

Each case is a whole document; the line the issue must point at carries the marker ``#<``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provisiond.adapters.specfile import load_desired, load_documents
from provisiond.core.errors import SpecError, SpecIssue

HEAD = """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata: {name: lab}
spec:
  defaults: {template: tmpl, cores: 2, memory: 4GiB, bridge: vmbr0}
"""

CASES: dict[str, tuple[str, str, str]] = {
    # id: (document, expected path, expected message fragment)
    "duplicate VMID across pools": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - {name: web1, vmid: 100}
    - name: db
      vms:
        - {name: db1, vmid: 100}  #<
""",
        "spec.pools[1].vms[0].vmid",
        "duplicate VMID 100: db1 and web1 (fleet lab, {file}:9) both have it",
    ),
    "VMID under 100": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - name: web1
          vmid: 99  #<
""",
        "spec.pools[0].vms[0].vmid",
        "VMID 99 is below 100, the lowest VMID Proxmox accepts",
    ),
    "VMID range too small for count": (
        HEAD
        + """\
  pools:
    - name: web
      count: 3
      namePattern: "web{index}"
      vmidRange:
        start: 200
        end: 201  #<
""",
        "spec.pools[0].vmidRange.end",
        "vmidRange 200-201 holds 2 VMIDs but count is 3; raise end to at least 202",
    ),
    "bad MAC": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - {name: web1, vmid: 100, mac: "00:16:3e:63:79"}  #<
""",
        "spec.pools[0].vms[0].mac",
        "invalid MAC address '00:16:3e:63:79': six hex pairs",
    ),
    "multicast MAC": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - {name: web1, vmid: 100, mac: "01:16:3e:63:79:26"}  #<
""",
        "spec.pools[0].vms[0].mac",
        "unicast (the second hex digit is even)",
    ),
    "duplicate IP": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - {name: web1, vmid: 100, ip: 10.0.0.5/24}
        - {name: web2, vmid: 101, ip: 10.0.0.5/16}  #<
""",
        "spec.pools[0].vms[1].ip",
        "duplicate IP 10.0.0.5: web2 and web1",
    ),
    "duplicate MAC in another case": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - {name: web1, vmid: 100, mac: "00:16:3e:63:79:26"}
        - {name: web2, vmid: 101, mac: "00:16:3E:63:79:26"}  #<
""",
        "spec.pools[0].vms[1].mac",
        "duplicate MAC 00:16:3E:63:79:26: web2 and web1",
    ),
    "duplicate VM name": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - {name: web1, vmid: 100}
        - {name: web1, vmid: 101}  #<
""",
        "spec.pools[0].vms[1].name",
        "duplicate VM name web1",
    ),
    "label value of 64 chars": (
        HEAD
        + """\
  pools:
    - name: web
      kubernetes:
        labels:
          team: """
        + "a" * 64
        + """  #<
      vms:
        - {name: web1, vmid: 100}
""",
        "spec.pools[0].kubernetes.labels.team",
        f"label value '{'a' * 64}': must be no more than 63 characters",
    ),
    "label key with two slashes": (
        HEAD
        + """\
  pools:
    - name: web
      kubernetes:
        labels: {"example.com/a/b": x}  #<
      vms:
        - {name: web1, vmid: 100}
""",
        'spec.pools[0].kubernetes.labels["example.com/a/b"]',
        "label key 'example.com/a/b': a qualified name must consist of alphanumeric characters",
    ),
    "label key prefix in upper case": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - name: web1
          vmid: 100
          kubernetes:
            labels:
              Example.com/gpu: "yes"  #<
""",
        'spec.pools[0].vms[0].kubernetes.labels["Example.com/gpu"]',
        "prefix part a lowercase RFC 1123 subdomain must consist of lower case",
    ),
    "unquoted number as label value": (
        HEAD
        + """\
  pools:
    - name: web
      kubernetes:
        labels:
          inferno.circle: 2  #<
      vms:
        - {name: web1, vmid: 100}
""",
        'spec.pools[0].kubernetes.labels["inferno.circle"]',
        "expected a string, got 2: put it in quotes ('2')",
    ),
    "taint without effect": (
        HEAD
        + """\
  pools:
    - name: web
      kubernetes:
        taints:
          - "gpu=true"  #<
      vms:
        - {name: web1, vmid: 100}
""",
        "spec.pools[0].kubernetes.taints[0]",
        "taint 'gpu=true' has no effect: write 'key=value:Effect' or 'key:Effect'",
    ),
    "taint with an unknown effect": (
        HEAD
        + """\
  pools:
    - name: web
      kubernetes:
        taints: ["gpu=true:NoScheduling"]  #<
      vms:
        - {name: web1, vmid: 100}
""",
        "spec.pools[0].kubernetes.taints[0]",
        "effect 'NoScheduling' is not supported: supported values: NoSchedule, PreferNoSchedule",
    ),
    "unknown field at top level": (
        """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata: {name: lab}
spec:
  pools: []
  policy: {allowEmpty: true}
status: {}  #<
""",
        "status",
        "unknown field 'status'; allowed here: apiVersion, kind, metadata, spec",
    ),
    "unknown field nested": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - name: web1
          vmid: 100
          cpus: 4  #<
""",
        "spec.pools[0].vms[0].cpus",
        "unknown field 'cpus'; did you mean 'cores'?",
    ),
    "unknown field deep in policy": (
        HEAD
        + """\
  pools:
    - name: web
      vms: [{name: web1, vmid: 100}]
  policy:
    rebalance:
      memThreshold: 0.8  #<
""",
        "spec.policy.rebalance.memThreshold",
        "unknown field 'memThreshold'; did you mean 'memoryThreshold'?",
    ),
    "negative cores": (
        HEAD
        + """\
  pools:
    - name: web
      cores: -4  #<
      vms: [{name: web1, vmid: 100}]
""",
        "spec.pools[0].cores",
        "Input should be greater than or equal to 1, got -4",
    ),
    "128Gb typo": (
        HEAD
        + """\
  pools:
    - name: web
      memory: 128Gb  #<
      vms: [{name: web1, vmid: 100}]
""",
        "spec.pools[0].memory",
        "invalid size '128Gb': did you mean '128GiB'?",
    ),
    "disk size without unit": (
        HEAD
        + """\
  pools:
    - name: web
      disks:
        - slot: scsi0
          size: "100"  #<
      vms: [{name: web1, vmid: 100}]
""",
        "spec.pools[0].disks[0].size",
        "invalid size '100': a size needs a unit",
    ),
    "GPU count 0": (
        HEAD
        + """\
  pools:
    - name: web
      gpus:
        mapping: a100-40g
        count: 0  #<
      vms: [{name: web1, vmid: 100}]
""",
        "spec.pools[0].gpus.count",
        "Input should be greater than or equal to 1, got 0",
    ),
    "raw PCI address as mapping": (
        HEAD
        + """\
  pools:
    - name: web
      gpus:
        mapping: "0000:41:00.0"  #<
      vms: [{name: web1, vmid: 100}]
""",
        "spec.pools[0].gpus.mapping",
        "a raw PCI address ('0000:41:00.0') cannot be used for GPUs: Proxmox lets only root@pam",
    ),
    "raw PCI address as host": (
        HEAD
        + """\
  pools:
    - name: web
      gpus: {host: "41:00.0", count: 1}  #<
      vms: [{name: web1, vmid: 100}]
""",
        "spec.pools[0].gpus",
        "Create a PCI resource mapping",
    ),
    "template by VMID and name at once": (
        HEAD
        + """\
  pools:
    - name: web
      template: k3s-node-tmpl
      templateVmid: 9000  #<
      vms: [{name: web1, vmid: 100}]
""",
        "spec.pools[0].templateVmid",
        "template is given both by name ('k3s-node-tmpl') and by VMID (9000)",
    ),
    "fleet name with uppercase": (
        """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata:
  name: CPS-GPU  #<
spec:
  defaults: {template: tmpl, cores: 2, memory: 4GiB}
  pools: [{name: web, vms: [{name: web1, vmid: 100}]}]
""",
        "metadata.name",
        "invalid fleet name 'CPS-GPU': it becomes the Proxmox tag 'pd-<name>'",
    ),
    "strict spread the allowed hosts cannot meet": (
        HEAD
        + """\
  pools:
    - name: dc
      placement:
        hosts: [node01, node02]
        spread: strict  #<
      vms:
        - {name: dc01, vmid: 100}
        - {name: dc02, vmid: 101}
        - {name: dc03, vmid: 102}
""",
        "spec.pools[0].placement.spread",
        "strict spread puts each of the 3 VMs of pool 'dc' on its own host, but "
        "spec.pools[0].placement.hosts allows only 2 (node01, node02)",
    ),
    "strict spread with two VMs pinned together": (
        HEAD
        + """\
  placement: {spread: strict}
  pools:
    - name: dc
      vms:
        - {name: dc01, vmid: 100, host: node01}
        - {name: dc02, vmid: 101, host: node01}  #<
""",
        "spec.pools[0].vms[1].host",
        "strict spread: dc02 and dc01 of pool 'dc' are both pinned to 'node01'",
    ),
    "pinned host outside the allowed hosts": (
        HEAD
        + """\
  placement: {hosts: [node01]}
  pools:
    - name: web
      vms:
        - {name: web1, vmid: 100, host: node09}  #<
""",
        "spec.pools[0].vms[0].host",
        "web1 is pinned to 'node09', which spec.placement.hosts does not allow (node01)",
    ),
    "pool with both vms and count": (
        HEAD
        + """\
  pools:
    - name: web
      count: 2  #<
      vms: [{name: web1, vmid: 100}]
""",
        "spec.pools[0].count",
        "a pool lists either vms or count (with namePattern and vmidRange), not both",
    ),
    "namePattern without index": (
        HEAD
        + """\
  pools:
    - name: web
      count: 2
      namePattern: web  #<
      vmidRange: {start: 100, end: 110}
""",
        "spec.pools[0].namePattern",
        "namePattern 'web' must use {index}",
    ),
    "count without vmidRange": (
        HEAD
        + """\
  pools:
    - name: web
      count: 2  #<
      namePattern: "web{index}"
""",
        "spec.pools[0].count",
        "count needs vmidRange {start, end}: VMIDs are never guessed",
    ),
    "gateway outside the network": (
        HEAD
        + """\
  pools:
    - name: web
      gateway: 10.1.0.1  #<
      vms: [{name: web1, vmid: 100, ip: 10.21.0.35/16}]
""",
        "spec.pools[0].gateway",
        "gateway 10.1.0.1 is outside web1's network 10.21.0.0/16",
    ),
    "IP without prefix length": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - {name: web1, vmid: 100, ip: 10.21.0.35}  #<
""",
        "spec.pools[0].vms[0].ip",
        "'10.21.0.35' needs a prefix length: write an IPv4 CIDR like '10.21.0.35/16' or 'dhcp'",
    ),
    "nics with the net0 shorthand": (
        HEAD
        + """\
  pools:
    - name: web
      vms:
        - name: web1
          vmid: 100
          nics: [{bridge: vmbr1}]
          mac: "00:16:3e:00:00:01"  #<
""",
        "spec.pools[0].vms[0].mac",
        "mac is the net0 shorthand and cannot be combined with nics; move it into nics[0]",
    ),
    "reserved tag": (
        HEAD
        + """\
  pools:
    - name: web
      tags:
        - pd-other  #<
      vms: [{name: web1, vmid: 100}]
""",
        "spec.pools[0].tags[0]",
        "tag 'pd-other' is reserved",
    ),
    "no template anywhere": (
        """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata: {name: lab}
spec:
  pools:
    - name: web
      cores: 2
      memory: 2GiB
      vms:
        - {name: web1, vmid: 100}  #<
""",
        "spec.pools[0].vms[0]",
        "web1 has no template: set template (a template's name) in spec.defaults, the pool",
    ),
    "empty fleet without allowEmpty": (
        """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleet
metadata: {name: lab}
spec:
  pools: []  #<
""",
        "spec.pools",
        "fleet 'lab' declares no VMs; an empty fleet is refused unless policy.allowEmpty is true",
    ),
    "power state misspelt": (
        HEAD
        + """\
  pools:
    - name: web
      power: on  #<
      vms: [{name: web1, vmid: 100}]
""",
        "spec.pools[0].power",
        "Input should be 'running' or 'stopped', got 'on'",
    ),
    "unknown kind": (
        """\
apiVersion: provisiond.dev/v1alpha1
kind: Fleets  #<
metadata: {name: lab}
""",
        "kind",
        "unknown kind 'Fleets': expected one of Fleet, Topology",
    ),
    "YAML syntax error": (
        HEAD
        + """\
  pools:
    - name: web
      vms: [{name: web1, vmid: 100}
  policy: {}  #<
""",
        "",
        "invalid YAML: while parsing a flow sequence, expected ',' or ']'",
    ),
    "duplicate key": (
        HEAD
        + """\
  pools:
    - name: web
      cores: 2
      cores: 4  #<
      vms: [{name: web1, vmid: 100}]
""",
        "",
        'found duplicate key "cores"',
    ),
}


def _expected_line(text: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.endswith("#<"))


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_names_file_line_path_and_reason(tmp_path: Path, case: str) -> None:
    text, path, fragment = CASES[case]
    file = tmp_path / "fleet.yaml"
    file.write_text(text)
    issues = load_documents([file]).issues
    expected_line = _expected_line(text)
    fragment = fragment.replace("{file}", str(file))
    matching = [i for i in issues if i.path == path and fragment in i.message]
    assert matching, f"no issue at {path!r} containing {fragment!r}; got:\n" + "\n".join(
        map(str, issues)
    )
    assert matching[0].file == str(file)
    assert matching[0].line == expected_line
    rendered = str(matching[0])
    assert rendered.startswith(f"{file}:{expected_line}: ")


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    file = tmp_path / "fleet.yaml"
    file.write_text(
        HEAD
        + """\
  pools:
    - name: web
      memory: 16Gb
      vms:
        - {name: web1, vmid: 50, mac: "zz"}
        - {name: web1, vmid: 101}
"""
    )
    issues = load_documents([file]).issues
    assert [(i.line, i.path) for i in issues] == [
        (8, "spec.pools[0].memory"),
        (10, "spec.pools[0].vms[0].mac"),
        (10, "spec.pools[0].vms[0].vmid"),
    ]  # cross-field checks (the duplicate name) run once the document's schema errors are fixed


def test_semantic_errors_of_several_files_together(tmp_path: Path) -> None:
    doc = HEAD + "  pools:\n    - name: web\n      vms: [{name: web1, vmid: 100}]\n"
    (tmp_path / "a.yaml").write_text(doc)
    (tmp_path / "b.yml").write_text(doc.replace("name: web1, vmid: 100", "name: web2, vmid: 101"))
    issues = load_documents([tmp_path]).issues
    assert [str(i) for i in issues] == [
        f"{tmp_path / 'b.yml'}:3: metadata.name: duplicate fleet name 'lab': also in "
        f"{tmp_path / 'a.yaml'}:3"
    ]


def test_two_fleets_in_one_file_with_the_same_name(tmp_path: Path) -> None:
    doc = HEAD + "  pools:\n    - name: web\n      vms: [{name: web1, vmid: 100}]\n"
    other = doc.replace("name: web1, vmid: 100", "name: web2, vmid: 101")
    file = tmp_path / "fleets.yaml"
    file.write_text(doc + "---\n" + other)
    issues = load_documents([file]).issues
    assert len(issues) == 1
    assert issues[0].line == 12  # the second document's metadata line
    assert issues[0].message == f"duplicate fleet name 'lab': also in {file}:3"


def test_empty_file(tmp_path: Path) -> None:
    file = tmp_path / "fleet.yaml"
    file.write_text("# nothing here yet\n")
    assert [str(i) for i in load_documents([file]).issues] == [
        f"{file}: the file is empty: expected a Fleet or Topology document"
    ]


def test_directory_without_fleet(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a spec")
    assert [str(i) for i in load_documents([tmp_path]).issues] == [
        f"{tmp_path}: no Fleet document in this directory (*.yaml, *.yml)"
    ]


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert [str(i) for i in load_documents([missing]).issues] == [
        f"{missing}: no such file or directory"
    ]


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    file = tmp_path / "fleet.yaml"
    file.write_text("- a\n- b\n")
    (issue,) = load_documents([file]).issues
    assert (issue.line, issue.message) == (1, "a document must be a mapping with kind: Fleet")
    file.write_text("just text\n")
    (issue,) = load_documents([file]).issues
    assert (issue.line, issue.message) == (None, "a document must be a mapping with kind: Fleet")


def test_missing_kind_and_required_fields(tmp_path: Path) -> None:
    file = tmp_path / "fleet.yaml"
    file.write_text("apiVersion: provisiond.dev/v1alpha1\nmetadata: {name: x}\n")
    (issue,) = load_documents([file]).issues
    assert issue.path == "kind"
    assert issue.message.startswith("kind is missing: expected one of Fleet, Topology")
    file.write_text("apiVersion: provisiond.dev/v1alpha1\nkind: Fleet\nmetadata: {name: x}\n")
    (issue,) = load_documents([file]).issues
    assert (issue.line, issue.path, issue.message) == (1, "spec", "'spec' is required")


def test_wrong_type_messages(tmp_path: Path) -> None:
    file = tmp_path / "fleet.yaml"
    file.write_text(
        HEAD
        + "  pools:\n    - name: web\n      cores: '4'\n      cloudInit: yes\n"
        + "      vms: [{name: web1, vmid: 100}]\n"
    )
    issues = {i.path: (i.line, i.message) for i in load_documents([file]).issues}
    assert issues["spec.pools[0].cores"] == (8, "Input should be a valid integer, got '4'")
    assert issues["spec.pools[0].cloudInit"] == (9, "expected a mapping, got 'yes'")


def test_topology_errors_are_reported_by_validate(tmp_path: Path) -> None:
    file = tmp_path / "topology.yaml"
    file.write_text(
        "apiVersion: provisiond.dev/v1alpha1\nkind: Topology\nmetadata: {name: t}\n"
        "spec:\n  hosts:\n    - {name: h1, cpus: 8, memory: 8GiB, colour: red}\n"
    )
    issues = load_documents([file]).issues
    (issue,) = [i for i in issues if i.path == "spec.hosts[0].colour"]
    assert issue.line == 6
    assert issue.message.startswith("unknown field 'colour'")


def test_daemon_loader_ignores_topologies(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        HEAD + "  pools:\n    - name: web\n      vms: [{name: web1, vmid: 100}]\n"
    )
    (tmp_path / "topology.yaml").write_text("apiVersion: x\nkind: Topology\nspec: 3\n")
    desired = load_desired([tmp_path])
    assert [vm.name for vm in desired.all_vms()] == ["web1"]
    assert desired.all_vms()[0].source.line == 8
    assert load_documents([tmp_path]).issues  # validate does check it


def test_daemon_loader_raises_every_issue(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        HEAD + "  pools:\n    - name: web\n      vms: [{name: web1, vmid: 1, mac: x}]\n"
    )
    with pytest.raises(SpecError) as exc:
        load_desired([tmp_path])
    assert [i.path for i in exc.value.issues] == [
        "spec.pools[0].vms[0].mac",
        "spec.pools[0].vms[0].vmid",
    ]


def test_daemon_loader_refuses_no_fleet_at_all(tmp_path: Path) -> None:
    file = tmp_path / "topology.yaml"
    file.write_text("apiVersion: x\nkind: Topology\n")
    with pytest.raises(SpecError) as exc:
        load_desired([file])
    assert exc.value.issues == (SpecIssue(str(file), None, "", "no Fleet document found"),)


def test_directory_scan_skips_dotfiles_and_other_suffixes(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(
        HEAD + "  pools:\n    - name: web\n      vms: [{name: web1, vmid: 100}]\n"
    )
    (tmp_path / ".hidden.yaml").write_text("kind: Nonsense\n")
    (tmp_path / "notes.txt").write_text("kind: Nonsense\n")
    (tmp_path / "..data").mkdir()
    loaded = load_documents([tmp_path])
    assert loaded.ok
    assert [f.fleet.metadata.name for f in loaded.fleets] == ["lab"]


def test_unreadable_file(tmp_path: Path) -> None:
    file = tmp_path / "fleet.yaml"
    file.write_bytes(b"\xff\xfe\x00bad")
    (issue,) = load_documents([file]).issues
    assert issue.message.startswith("cannot read:")
