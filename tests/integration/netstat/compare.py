"""Reads netstat's and sockwho's output for the same sockets and flags, and
parses both as jc (`jc.parsers.netstat`) and Ansible's listen_ports_facts
(both the current `netStatParse` and its older form, copied here: the module
cannot be imported without Ansible) read them. Prints one JSON object:
{"jc": [differences], "ansible": [differences], "ansible_old": [...], "rows": N}.
A difference is a string naming the socket and the field.
"""
import json
import re
import sys

import jc


def jc_rows(text):
    rows = [r for r in jc.parse("netstat", text, quiet=True) if r.get("kind") == "network"]
    return rows


def key(r):
    return (r.get("proto"), r.get("local_address"), r.get("local_port"),
            r.get("foreign_address"), r.get("foreign_port"))


def compare_jc(netstat, sockwho):
    diffs = []
    theirs = {key(r): r for r in jc_rows(netstat)}
    ours = {key(r): r for r in jc_rows(sockwho)}
    if set(theirs) != set(ours):
        diffs.append("sockets: netstat only %s, sockwho only %s"
                     % (sorted(map(str, set(theirs) - set(ours))), sorted(map(str, set(ours) - set(theirs)))))
    for k, t in theirs.items():
        o = ours.get(k)
        if o is None:
            continue
        for field, value in t.items():
            if o.get(field) != value:
                diffs.append("%s %s: netstat %r, sockwho %r" % (k, field, value, o.get(field)))
    return diffs, len(theirs)


# Ansible's listen_ports_facts, netStatParse and split_pid_name as of
# ansible-core 2.1x (community.general's copy is the same), line for line in
# what they do.
def split_pid_name(pid_name):
    try:
        pid, name = pid_name.split("/", 1)
    except ValueError:
        return 0, ""
    else:
        name = name.rstrip(":")
        return int(pid), name


def ansible_parse(raw):
    results = list()
    for line in raw.splitlines():
        if line.startswith(("tcp", "udp")):
            state = ""
            pid_and_name = ""
            process = ""
            formatted_line = line.split()
            protocol, recv_q, send_q, address, foreign_address, rest = \
                formatted_line[0], formatted_line[1], formatted_line[2], formatted_line[3], formatted_line[4], formatted_line[5:]
            address, port = address.rsplit(":", 1)
            if protocol.startswith("tcp"):
                protocol = "tcp"
                if len(rest) == 3:
                    state, pid_and_name, process = rest
                if len(rest) == 2:
                    state, pid_and_name = rest
            if protocol.startswith("udp"):
                protocol = "udp"
                if len(rest) == 2:
                    pid_and_name, process = rest
                if len(rest) == 1:
                    pid_and_name = rest[0]
            pid, name = split_pid_name(pid_name=pid_and_name)
            result = {'protocol': protocol, 'state': state, 'address': address,
                      'foreign_address': foreign_address, 'port': int(port), 'name': name, 'pid': int(pid)}
            if result not in results:
                results.append(result)
    return results


# The older form (Ansible 2.9), which raises where it finds no PID.
def ansible_old_parse(raw):
    results = list()
    for line in raw.splitlines():
        listening_search = re.search('[^ ]+:[0-9]+', line)
        if listening_search:
            splitted = line.split()
            conns = re.search('([^ ]+):([0-9]+)', splitted[3])
            pidstr = ''
            if 'tcp' in splitted[0]:
                protocol = 'tcp'
                pidstr = splitted[6]
            elif 'udp' in splitted[0]:
                protocol = 'udp'
                pidstr = splitted[5]
            pids = re.search(r'(([0-9]+)/(.*)|-)', pidstr)
            if conns and pids:
                address = conns.group(1)
                port = conns.group(2)
                pid = pids.group(2) if pids.group(2) else 0
                name = pids.group(3) if pids.group(3) else ''
                result = dict(pid=int(pid), address=address, port=int(port), protocol=protocol, name=name)
                if result not in results:
                    results.append(result)
            elif not pids:
                raise EnvironmentError('Could not get the pids for the listening ports')
    return results


def compare_lists(parse, netstat, sockwho):
    try:
        theirs = parse(netstat)
        ours = parse(sockwho)
    except Exception as e:  # the parser's own failure is a difference
        return ["raised %r" % (e,)]
    canon = lambda rows: sorted(json.dumps(r, sort_keys=True) for r in rows)
    if canon(theirs) == canon(ours):
        return []
    return ["netstat only %s; sockwho only %s" % (
        sorted(set(canon(theirs)) - set(canon(ours))), sorted(set(canon(ours)) - set(canon(theirs))))]


netstat, sockwho, with_programs = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3] == "1"
out = {}
out["jc"], out["rows"] = compare_jc(netstat, sockwho)
if with_programs:
    out["ansible"] = compare_lists(ansible_parse, netstat, sockwho)
    out["ansible_old"] = compare_lists(ansible_old_parse, netstat, sockwho)
print(json.dumps(out))
