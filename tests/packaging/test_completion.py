"""The bash completion (completions/sandpit.bash), run in a real bash
against the real binary: verbs, each verb's flags (every flag its usage
names), workspace names from `sandpit ps --json`, snapshot names from
`sandpit snapshots NAME --json`. fish's file is run by fish's own
completion engine; zsh's with its completion builtins stubbed."""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, SANDPIT
from test_man import FAMILY, flags_of

BASH = os.path.join(ROOT, "completions", "sandpit.bash")


PROSE = {"restore": {"--restart"}}


def complete(line, state_dir):
    """What bash offers for the last word of LINE (a trailing space: a new
    word)."""
    script = f'''
source "{BASH}"
line='{line}'
read -r -a COMP_WORDS <<< "$line"
[ "${{line: -1}}" = " " ] && COMP_WORDS+=("")
COMP_WORDS[0]="{SANDPIT}"
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE=$line
COMP_POINT=${{#line}}
_sandpit
printf '%s\\n' "${{COMPREPLY[@]}}"
'''
    r = subprocess.run(["bash", "--norc", "-c", script], capture_output=True,
                       text=True, timeout=60, cwd=state_dir if os.path.isdir(state_dir) else None,
                       env=dict(os.environ, SANDPIT_STATE=state_dir))
    assert r.returncode == 0, r.stderr
    return set(filter(None, r.stdout.split("\n")))


def test_verbs(tmp_path):
    got = complete("sandpit ", str(tmp_path))
    assert {"run", "exec", "snapshot", "snapshots", "service", "image"} <= got
    assert complete("sandpit res", str(tmp_path)) == {"reset", "restore", "resume"}


def test_workspace_names(state):
    assert complete("sandpit exec ", state) == {"alpha", "beta"}
    assert complete("sandpit exec al", state) == {"alpha"}
    assert complete("sandpit service logs ", state) == {"alpha", "beta"}
    assert complete("sandpit cp b", state) == {"beta:"}


def test_snapshot_names(state):
    assert complete("sandpit restore alpha ", state) == {"s-one", "s-two"}
    assert complete("sandpit fork alpha s-t", state) == {"s-two"}
    assert complete("sandpit snapshot rm alpha ", state) == {"s-one", "s-two"}
    assert complete("sandpit restore beta ", state) == set()


def test_no_state_no_names(tmp_path):
    # No workspace: nothing offered, and no error from the completion.
    assert complete("sandpit exec ", str(tmp_path / "none")) == set()


def test_values(tmp_path):
    assert complete("sandpit run --profile ", str(tmp_path)) == {"minimal", "standard", "dev"}
    assert complete("sandpit run --net ", str(tmp_path)) == {"none", "host", "allow:"}


@pytest.mark.parametrize("cmd", sorted(c for c in FAMILY if c not in ("files", "service", "image", "net")))
def test_every_help_flag_completes(cmd, tmp_path):
    # restore's help names service start's --restart in its prose.
    want = flags_of(cmd, str(tmp_path)) - {"-h", "--help"} - PROSE.get(cmd, set())
    got = complete(f"sandpit {cmd} -", str(tmp_path))
    assert want <= got, f"{cmd}: {sorted(want - got)} not completed"


@pytest.mark.parametrize("sub,flags", [
    ("files ls", {"-R", "--json"}), ("files mv", {"--no-replace"}),
    ("service start", {"--ready", "--restart", "--secret-env"}),
    ("service logs", {"--tail", "--follow", "--stderr"}),
    ("image import", {"--name"}), ("net log", {"--follow", "--json"})])
def test_sub_verb_flags(sub, flags, tmp_path):
    assert flags <= complete(f"sandpit {sub} -", str(tmp_path))


def test_fish(state, tmp_path):
    # fish's own completion engine on the installed-style file: sandpit
    # found on PATH as the shell would.
    if not shutil.which("fish"):
        pytest.fail("fish is not installed (scripts/deps.sh --test installs it)")
    b = tmp_path / "bin"
    b.mkdir()
    os.symlink(SANDPIT, b / "sandpit")
    fish = os.path.join(ROOT, "completions", "sandpit.fish")

    def fc(line):
        r = subprocess.run(["fish", "--no-config", "-c", f"source {fish}; complete -C '{line}'"],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, SANDPIT_STATE=state,
                                    PATH=f"{b}:{os.environ['PATH']}"))
        assert r.returncode == 0, r.stderr
        return {w.split("\t")[0] for w in r.stdout.split("\n") if w}

    assert fc("sandpit exec ") == {"alpha", "beta"}
    assert fc("sandpit restore alpha ") == {"s-one", "s-two"}
    assert {"--secret-env", "--no-wait", "--workdir"} <= fc("sandpit exec --")
    assert fc("sandpit res") == {"reset", "restore", "resume"}


ZSH_STUBS = r"""
compadd() { local a; for a in "$@"; do [[ $a == -- || $a == -S || -z $a ]] || print -r -- "$a"; done }
_describe() { local -a arr; arr=("${(@P)${@[-1]}}"); print -l -- ${arr%%:*} }
_files() { print FILES }
_normal() { print NORMAL }
_command_names() { print COMMANDS }
"""


def zsh_complete(line, state_dir):
    """What _sandpit hands compadd for LINE, with zsh's completion
    builtins replaced by functions that print their words (compadd's own
    prefix filtering left out, so a superset)."""
    if not shutil.which("zsh"):
        pytest.fail("zsh is not installed (scripts/deps.sh --test installs it)")
    words = line.split(" ")
    script = ZSH_STUBS + f"""
words=({SANDPIT} {' '.join(repr(w) if w else "''" for w in words[1:])})
CURRENT=${{#words}}
PREFIX=${{words[CURRENT]}}
source {os.path.join(ROOT, "completions", "_sandpit")}
"""
    r = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, SANDPIT_STATE=state_dir))
    assert r.returncode == 0, r.stderr
    return set(filter(None, r.stdout.split("\n")))


def test_zsh(state):
    assert {"run", "exec", "restore", "snapshot"} <= zsh_complete("sandpit ", state)
    assert zsh_complete("sandpit exec ", state) == {"alpha", "beta"}
    assert zsh_complete("sandpit restore alpha ", state) == {"s-one", "s-two"}
    assert {"--secret-env", "--no-wait", "-i"} <= zsh_complete("sandpit exec alpha --", state)
    assert zsh_complete("sandpit run -- ", state) == {"NORMAL"}
    r = subprocess.run(["zsh", "-n", os.path.join(ROOT, "completions", "_sandpit")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
