"""Dockerfile instructions that change only an image's config, applied to a config dict.

Used by ``docker commit --change`` (Engine API ``POST /commit?changes=``) and by the classic
builder. The rules are the Dockerfile reference's (docs.docker.com/engine/reference/builder) as
moby's builder/dockerfile dispatchers apply them:

* ``CMD``, ``ENTRYPOINT``: exec form (a JSON array of strings) kept as is; shell form wrapped
  in the config's ``Shell`` (default ``["/bin/sh", "-c"]``). ``ENTRYPOINT`` resets ``Cmd``
  unless a ``CMD`` was given in the same run (moby's ``cmdSet``).
* ``ENV`` and ``LABEL``: ``k=v`` pairs (quotes and backslash escapes as a shell's), or the
  legacy ``ENV k the rest``; ``ENV`` replaces a variable in place, else appends.
* ``EXPOSE port[/proto]...`` -> ``ExposedPorts`` (``tcp`` by default), ``VOLUME`` (JSON array
  or words) -> ``Volumes``, ``USER``, ``WORKDIR`` (relative to the current one),
  ``STOPSIGNAL``, ``SHELL`` (JSON array only), ``ONBUILD`` (kept as text).
* ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}`` in ``ENV``, ``LABEL``, ``EXPOSE``,
  ``USER``, ``WORKDIR``, ``VOLUME``, ``STOPSIGNAL`` are replaced from the config's ``Env`` (and
  build args given), ``\\$`` keeps a literal dollar.

Errors: :class:`~runtime.errors.InvalidArgument` with moby's texts (``ENV names can not be
blank``, ``SHELL requires the arguments to be in JSON form``, ``X is not a valid change command``,
``Unknown instruction: X``).
"""

from __future__ import annotations

import json
import posixpath
import re

from runtime.errors import InvalidArgument

DEFAULT_SHELL = ["/bin/sh", "-c"]
#: What ``docker commit --change`` accepts (moby builder/dockerfile ``validCommitCommands``).
COMMIT_INSTRUCTIONS = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
                       "VOLUME", "WORKDIR"}
CONFIG_INSTRUCTIONS = COMMIT_INSTRUCTIONS | {"SHELL", "MAINTAINER"}
_EXPANDED = {"ENV", "LABEL", "EXPOSE", "USER", "WORKDIR", "VOLUME", "STOPSIGNAL"}
_VAR = re.compile(r"\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def split_line(line: str) -> tuple[str, str]:
    """``"CMD  [\\"a\\"]"`` -> ``("CMD", '["a"]')``; InvalidArgument for an empty line."""
    parts = line.strip().split(None, 1)
    if not parts:
        raise InvalidArgument("empty instruction")
    return parts[0].upper(), parts[1].strip() if len(parts) > 1 else ""


def env_map(env) -> dict:
    out = {}
    for item in env or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def expand(text: str, variables: dict) -> str:
    """*text* with its variables replaced from *variables* (see the module docstring)."""
    def sub(m):
        if m.group(0) == "\\$":
            return "$"
        braced, op, word, bare = m.groups()
        value = variables.get(braced or bare)
        if op == "-":
            return value if value else word
        if op == "+":
            return word if value else ""
        return value or ""
    return _VAR.sub(sub, text)


def words(text: str) -> list[str]:
    """Shell-like words: whitespace separated, ``"..."`` and ``'...'`` quoting, ``\\`` escapes."""
    out, cur, quote, i, have = [], [], None, 0, False
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                cur.append(text[i])
            else:
                cur.append(ch)
        elif ch in "\"'":
            quote, have = ch, True
        elif ch == "\\" and i + 1 < len(text):
            i += 1
            cur.append(text[i])
            have = True
        elif ch.isspace():
            if cur or have:
                out.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(ch)
            have = True
        i += 1
    if quote:
        raise InvalidArgument(f"unmatched quote in {text!r}")
    if cur or have:
        out.append("".join(cur))
    return out


def json_args(value: str) -> list[str] | None:
    """The exec form's list when *value* is a JSON array of strings, else None (shell form)."""
    if not value.startswith("["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed):
        return parsed
    return None


def pairs(instruction: str, value: str, variables: dict) -> list[tuple[str, str]]:
    """``k=v`` pairs of ENV / LABEL (or the legacy ``ENV k rest``), expanded."""
    first = value.split(None, 1)
    if instruction == "ENV" and first and "=" not in first[0]:
        if len(first) < 2:
            raise InvalidArgument("ENV must have two arguments")
        return [(first[0], expand(first[1], variables))]
    out = []
    for w in words(value):
        k, eq, v = w.partition("=")
        if not eq:
            raise InvalidArgument(f"{instruction} {w}: want key=value")
        if not k:
            raise InvalidArgument(f"{instruction} names can not be blank")
        out.append((expand(k, variables), expand(v, variables)))
    if not out:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    return out


def shell_or_exec(config: dict, value: str) -> list[str]:
    args = json_args(value)
    return args if args is not None else list(config.get("Shell") or DEFAULT_SHELL) + [value]


class ConfigApplier:
    """Applies instructions to *config* (an image config's ``config``: Env, Cmd, ...), changed in
    place; *build_args* are variables seen by expansion only."""

    def __init__(self, config: dict, build_args: dict | None = None):
        self.config = config
        self.build_args = dict(build_args or {})
        self.cmd_set = False

    def variables(self) -> dict:
        return {**self.build_args, **env_map(self.config.get("Env"))}

    def apply(self, instruction: str, value: str) -> None:
        """Apply one config instruction (see the module docstring); InvalidArgument."""
        c = self.config
        raw = value
        if instruction in _EXPANDED and instruction not in ("ENV", "LABEL"):
            value = expand(value, self.variables())
        if instruction == "CMD":
            c["Cmd"] = shell_or_exec(c, raw)
            self.cmd_set = True
        elif instruction == "ENTRYPOINT":
            c["Entrypoint"] = shell_or_exec(c, raw) if raw else None
            if not self.cmd_set:
                c["Cmd"] = None
        elif instruction == "ENV":
            env = list(c.get("Env") or [])
            for k, v in pairs("ENV", raw, self.variables()):
                item = f"{k}={v}"
                for i, old in enumerate(env):
                    if old.partition("=")[0] == k:
                        env[i] = item
                        break
                else:
                    env.append(item)
            c["Env"] = env
        elif instruction == "LABEL":
            labels = dict(c.get("Labels") or {})
            labels.update(pairs("LABEL", raw, self.variables()))
            c["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(c.get("ExposedPorts") or {})
            for p in words(value):
                port, _, proto = p.partition("/")
                if not port or not all(x.isdigit() for x in port.split("-", 1)):
                    raise InvalidArgument(f"Invalid containerPort: {port}")
                ports[f"{port}/{(proto or 'tcp').lower()}"] = {}
            c["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            vols = dict(c.get("Volumes") or {})
            paths = json_args(value)
            for v in paths if paths is not None else words(value):
                if not v.strip():
                    raise InvalidArgument("VOLUME specified can not be an empty string")
                vols[v] = {}
            c["Volumes"] = vols
        elif instruction == "USER":
            if not value:
                raise InvalidArgument("USER requires exactly one argument")
            c["User"] = value
        elif instruction == "WORKDIR":
            if not value:
                raise InvalidArgument("WORKDIR requires exactly one argument")
            c["WorkingDir"] = posixpath.normpath(posixpath.join(c.get("WorkingDir") or "/", value))
        elif instruction == "STOPSIGNAL":
            if not value:
                raise InvalidArgument("STOPSIGNAL requires exactly one argument")
            from runtime.daemon.stop import parse_signal
            parse_signal(value)
            c["StopSignal"] = value
        elif instruction == "SHELL":
            args = json_args(raw)
            if not args:
                raise InvalidArgument("SHELL requires the arguments to be in JSON form")
            c["Shell"] = args
        elif instruction == "ONBUILD":
            kind = split_line(raw)[0] if raw else ""
            if kind in ("ONBUILD", "FROM", "MAINTAINER"):
                raise InvalidArgument(f"{kind} isn't allowed as an ONBUILD trigger")
            c["OnBuild"] = list(c.get("OnBuild") or []) + [raw]
        elif instruction == "MAINTAINER":
            pass   # the image's author: the caller's (it is not part of the config)
        else:
            raise InvalidArgument(f"Unknown instruction: {instruction}")


def apply_changes(config: dict, changes: list[str]) -> dict:
    """``docker commit --change`` lines applied to *config* (changed in place and returned)."""
    applier = ConfigApplier(config)
    for line in changes:
        if not line.strip():
            continue
        instruction, value = split_line(line)
        if instruction not in COMMIT_INSTRUCTIONS:
            raise InvalidArgument(f"{instruction.lower()} is not a valid change command")
        applier.apply(instruction, value)
    return config
