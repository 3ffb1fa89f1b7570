"""`python app.py space-bundle --out DIR`: write a folder that is a Hugging Face Space running the arena.

The folder holds what a Gradio Space needs and nothing else:

- `README.md`: the Space's configuration as YAML front matter (the fixed keys of
  `spaces/front_matter.yaml` plus `sdk_version` = the locked Gradio, `python_version` = the lock's
  Python, `suggested_hardware`, `models` and `preload_from_hub` for the Hub checkpoints) and a page
  explaining the Space, from `spaces/README.md.jinja`;
- `requirements.txt`: the runtime closure of `requirements/lock.txt` (`runtime_requirements`);
- the app's code: the modules and packages pyproject.toml installs (app.py, arena/, backends/,
  cli/, storage/, ui/), never tests, benchmarks or docs;
- `variants.toml`: the lineup in the variant file format (`backends.variant_file`), which `serve`
  reads on a Space (Spaces run `python app.py`, and no command means `serve`).

Hardware (`suggest_hardware`, unless `--hardware` names a flavor): every variant keeps its model
in memory, so the lineup's Hub checkpoints must fit one GPU together. Each takes its weights and
a KV cache of 8,192 tokens as `python app.py doctor` computes them (`arena.hardware.estimate`;
with `quantize=4bit|8bit` what bitsandbytes leaves in bf16, like 26B A4B's experts, counted), and
a GPU keeps doctor's headroom (a tenth and 1 GB) for the runtime:

- no Hub checkpoint (demo, ollama, openai only): `cpu-basic`; the demo models are a few MB;
- up to 24 GB: `l4x1` (E2B: 10.3 GB; E4B: 16.0 GB);
- up to 48 GB: `l40sx1` (E2B + E4B: 26.3 GB; 31B in 4-bit: 21.2 GB, too tight for an L4);
- beyond: `a100-large`, 80 GB (26B A4B: 52.0 GB at any precision through bitsandbytes; 31B:
  64.1 GB); a lineup larger than that fits no single GPU, and a warning says to quantize or
  spread it over a multi-GPU flavor.

T4 flavors (16 GB) are never suggested: they have no bfloat16 hardware. ZeroGPU (`zero-a10g`) only
when asked: it needs a PRO or team account, and the wait for a GPU lent per answer would count in
the time to first token, so the figures the arena compares would no longer be the models' own.
`serve` notices ZeroGPU when it starts and runs the local variants in its own process under
`@spaces.GPU`; the variant file stays the same whatever the hardware.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.errors import ArenaError, UsageError
from arena.settings import Settings
from backends.registry import Registry, VariantSpec
from cli import EXIT_OK

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "spaces"
LOCK = REPO / "requirements" / "lock.txt"
PYPROJECT = REPO / "pyproject.toml"
VARIANT_FILE = "variants.toml"
ZERO_GPU = "zero-a10g"

#: The context a Space's variants are sized for (the KV cache of one conversation this long).
CONTEXT_TOKENS = 8192
#: Single-GPU flavors from the cheapest, with their GPU memory in GB.
GPU_FLAVORS = (("l4x1", 24), ("l40sx1", 48), ("a100-large", 80))
#: How the README's front matter reads, top down (keys not named here follow).
FRONT_MATTER_ORDER = [
    "title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "python_version", "app_file",
    "short_description", "license", "hf_oauth", "suggested_hardware", "models", "datasets", "preload_from_hub",
]
HUB_REPO = re.compile(r"\w[\w.-]*/\w[\w.-]*")
#: Parent lines of pip-compile's `# via` notes that are not packages.
_NOT_A_PACKAGE = re.compile(r"^-[rc]\s")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "space-bundle",
        help="write a folder that is a Hugging Face Space running the arena",
        description="Write a Hugging Face Space (Gradio SDK): README.md with the Space's configuration, "
        "requirements.txt pinned to the lock file, the app's code and variants.toml. Upload the folder "
        "to a Space repository as it is.",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="the folder to write (refused if it exists and is not empty, unless --force)")
    lineup = p.add_mutually_exclusive_group()
    lineup.add_argument("--variants", nargs="+", metavar="SPEC",
                        help="variant specs for the Space (default: the four demo variants)")
    lineup.add_argument("--config", metavar="FILE",
                        help="a TOML variant file to bundle; its [limits] and [space] tables are kept")
    p.add_argument("--hardware", metavar="NAME",
                   help="the suggested_hardware flavor (default: chosen from the variants' memory)")
    p.add_argument("--dataset", metavar="OWNER/NAME",
                   help="the dataset repository the Space appends its votes to ([space] dataset)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty folder, replacing the bundle's own files and packages "
                        "and leaving the rest (a Space clone's .git) alone")
    p.set_defaults(handler=run)


@dataclass(frozen=True)
class Hardware:
    """A hardware flavor and why, for the README; `warning` is also printed when building."""

    flavor: str
    reason: str
    warning: str | None = None


@dataclass(frozen=True)
class Locked:
    """One pin of the lock file and the packages that require it (pip-compile's `# via` notes)."""

    name: str
    version: str
    required_by: frozenset[str] = field(default_factory=frozenset)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from backends.registry import default_registry

    pyproject = tomllib.loads(PYPROJECT.read_text())
    lock_text = LOCK.read_text()
    locked = locked_packages(lock_text)
    specs, tables = read_lineup(args.variants, args.config, default_registry())
    repos = [repo for spec in specs if (repo := hub_checkpoint(spec))]  # refuses local folders first
    hardware = choose_hardware(specs, args.hardware)
    dataset = args.dataset or tables.get("space", {}).get("dataset")  # --dataset wins over the file's
    if dataset is not None:
        dataset = check_dataset(dataset)
        tables["space"] = {**tables.get("space", {}), "dataset": dataset}
    files = {  # every file made before any is written: a refusal leaves the folder as it was
        VARIANT_FILE: variant_file_text(specs, tables),
        "requirements.txt": requirements_text(runtime_requirements(locked, pyproject)),
        "README.md": readme_text(specs, hardware, locked["gradio"].version, lock_python(lock_text), repos, dataset),
    }
    code = app_code(pyproject)
    out = check_out_folder(args.out, args.force, code)
    if hardware.warning:
        print(f"warning: {hardware.warning}", file=sys.stderr)

    out.mkdir(parents=True, exist_ok=True)
    copy_app_code(code, out)
    for name, text in files.items():
        (out / name).write_text(text)
    print(f"Wrote a Hugging Face Space to {out}: {', '.join(code)}, {VARIANT_FILE}, requirements.txt, README.md.\n"
          "Create the Space and upload the folder:\n"
          "  hf repos create OWNER/SPACE --type space --sdk gradio\n"
          f"  hf upload OWNER/SPACE {out} . --type space\n"
          f"then choose its hardware in the Space's settings (suggested: {hardware.flavor})"
          + (f" and add the secret HF_TOKEN, a token that may write to {dataset}." if dataset else "."))
    return EXIT_OK


def check_out_folder(out: Path, force: bool, code: Sequence[str]) -> Path:
    """The folder to write, refused if it holds something and `--force` was not given, or if
    writing there would overwrite the sources the bundle copies (`code`)."""
    out = out.expanduser().resolve()
    if out == REPO or any(out.is_relative_to(REPO / name) for name in code):
        raise UsageError(f"--out {out} is inside the sources the bundle copies: choose a folder elsewhere")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file: give a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out} exists and is not empty: choose a new folder, or give --force to replace "
                         "the bundle's files in it")
    return out


def read_lineup(
    variants: Sequence[str] | None, config: str | None, registry: Registry
) -> tuple[list[VariantSpec], dict[str, dict[str, Any]]]:
    """The specs, and the tables of the variant file to keep ([limits] checked, [space] as given)."""
    from backends.variant_file import read_limits_table, read_variant_file
    from cli.compare import DEFAULT_VARIANTS

    if not config:
        return [registry.parse(text) for text in (variants or DEFAULT_VARIANTS)], {}
    specs = read_variant_file(config, registry)
    tables: dict[str, dict[str, Any]] = {}
    limits = read_limits_table(config)
    if limits is not None:
        tables["limits"] = limits
    space = tomllib.loads(Path(config).read_text()).get("space")
    if space is not None:
        if not isinstance(space, dict):
            raise UsageError(f"variant file {config}: space must be a table: a [space] line, then key = value lines")
        tables["space"] = dict(space)
    return specs, tables


def hub_checkpoint(spec: VariantSpec) -> str | None:
    """The Hub model repository a variant loads: an `hf:` target. None for the others (demo weights
    are built in the Space, remote engines hold their own). A local folder cannot go to a Space."""
    if spec.prefix != "hf":
        return None
    if not HUB_REPO.fullmatch(spec.target):
        raise UsageError(f"{spec}: {spec.target!r} is not a Hub model id (OWNER/NAME); a Space loads checkpoints "
                         "from the Hub only")
    return spec.target


def estimate_gb(spec: VariantSpec) -> float | None:
    """GPU memory the variant's checkpoint takes loaded with a KV cache of `CONTEXT_TOKENS`, as
    `doctor` computes it (`arena.hardware.estimate`: what bitsandbytes leaves unquantized, like
    26B A4B's experts, included), or None when its architecture is not known."""
    from arena.hardware import estimate

    repo = hub_checkpoint(spec)
    if repo is None:
        return None
    quantize = spec.options.get("quantize") or ""
    dtype = {"4bit": "int4", "8bit": "int8"}.get(quantize, "bf16")
    try:
        found = estimate(repo, dtype, CONTEXT_TOKENS)  # type: ignore[arg-type]
    except (ArenaError, KeyError, ValueError):
        return None
    weights_factor = 2.0 if spec.options.get("dtype") == "float32" else 1.0
    return (found.weights.total * weights_factor + found.kv.total) / 1e9


def usable_gb(memory_gb: int) -> float:
    """What a GPU of `memory_gb` leaves for the models: `doctor`'s headroom taken off."""
    from arena.hardware import GPU_RESERVE_BYTES, GPU_RESERVE_FRACTION

    return memory_gb * (1 - GPU_RESERVE_FRACTION) - GPU_RESERVE_BYTES / 1e9


def suggest_hardware(specs: Sequence[VariantSpec]) -> Hardware:
    """The cheapest flavor that holds every Hub checkpoint of the lineup at once (module docstring)."""
    hub = [spec for spec in specs if hub_checkpoint(spec)]
    if not hub:
        return Hardware("cpu-basic", "No variant loads a Hub checkpoint: the demo models are a few megabytes and "
                        "remote engines compute elsewhere, so the free CPU tier is enough.")
    unknown = [spec.label for spec in hub if estimate_gb(spec) is None]
    if unknown:
        why = f"the size of {', '.join(unknown)} is not known: the largest single GPU (80 GB) is suggested"
        return Hardware("a100-large", why[0].upper() + why[1:] + ".", f"{why}; give --hardware to choose")
    sizes = [(spec.label, estimate_gb(spec) or 0.0) for spec in hub]
    total = sum(gb for _, gb in sizes)
    arithmetic = (" + ".join(f"{label} {gb:.1f} GB" for label, gb in sizes)
                  + (f" = {total:.1f} GB" if len(sizes) > 1 else ""))
    basis = (f"(weights and a KV cache of {CONTEXT_TOKENS:,} tokens, as `python app.py doctor` computes them)")
    for flavor, memory in GPU_FLAVORS:
        if total <= usable_gb(memory):
            return Hardware(flavor, f"Every variant keeps its model in GPU memory: {arithmetic} {basis} fits "
                                    f"this flavor's {memory} GB less the runtime's headroom.")
    too_big = (f"the lineup takes {arithmetic} {basis}, more than one GPU's 80 GB: quantize variants "
               "(quantize=4bit) or spread them (device=cuda:N) and give --hardware a multi-GPU flavor such as a100x4")
    return Hardware("a100-large", too_big[0].upper() + too_big[1:] + ".", too_big)


def choose_hardware(specs: Sequence[VariantSpec], asked: str | None) -> Hardware:
    """`--hardware` checked against the flavors huggingface_hub knows, else the suggestion."""
    if not asked:
        return suggest_hardware(specs)
    from huggingface_hub import SpaceHardware

    flavors = [flavor.value for flavor in SpaceHardware]
    if asked not in flavors:
        raise UsageError(f"--hardware {asked} is not a Space hardware flavor: choose one of {', '.join(flavors)}")
    if asked == ZERO_GPU:
        return Hardware(asked, "ZeroGPU, chosen when the bundle was built: a GPU is lent for each answer, and the "
                               "local variants run in the app's own process under `@spaces.GPU`. Waiting for the GPU "
                               "counts in the time to first token, so compare speeds on dedicated hardware.")
    return Hardware(asked, f"Chosen when the bundle was built (the estimate alone suggests "
                           f"`{suggest_hardware(specs).flavor}`).")


def check_dataset(repo_id: object) -> str:
    """The dataset id as the Space's sync will read it (`storage.hub_sync.dataset_id`: an id, a
    `datasets/` path or a URL; never a model or a Space), refused here as a usage error."""
    from storage.hub_sync import HubSyncError, dataset_id

    try:
        return dataset_id(repo_id if isinstance(repo_id, str) else repr(repo_id))
    except HubSyncError as exc:
        raise UsageError(f"dataset {repo_id!r} is not a dataset repository id: give OWNER/NAME ({exc})") from exc


def variant_file_text(specs: Sequence[VariantSpec], tables: Mapping[str, Mapping[str, Any]]) -> str:
    """The lineup as a variant file: one [[variants]] table per spec (its options as strings, as a
    spec string gives them), then the kept [limits] and [space] tables."""
    import tomlkit

    document = tomlkit.document()
    document.add(tomlkit.comment("The Space's variants, in the variant file format (`python app.py space-bundle`)."))
    entries = tomlkit.aot()
    for spec in specs:
        entry = tomlkit.table()
        entry["spec"] = f"{spec.prefix}:{spec.target}"
        for key, value in spec.options.items():
            entry[key] = value
        entries.append(entry)
    document["variants"] = entries
    for name in ("limits", "space"):
        if name in tables:
            document[name] = dict(tables[name])
    return tomlkit.dumps(document)


def locked_packages(lock_text: str) -> dict[str, Locked]:
    """The lock's pins by canonical name, with what requires each (pip and setuptools included:
    sqlite-utils and torch require them, and the lock pins them)."""
    from packaging.utils import canonicalize_name

    pins: dict[str, Locked] = {}
    current: str | None = None
    parents: dict[str, set[str]] = {}
    for line in lock_text.splitlines():
        pin = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if pin:
            current = canonicalize_name(pin[1])
            pins[current] = Locked(pin[1], pin[2])
            parents[current] = set()
            continue
        note = re.match(r"\s+#\s+(?:via\s+)?(.+)$", line)
        if current and note and note[1].strip() != "via" and not _NOT_A_PACKAGE.match(note[1]):
            parents[current].add(canonicalize_name(note[1].split(" (")[0].strip()))
    return {name: Locked(pin.name, pin.version, frozenset(parents[name])) for name, pin in pins.items()}


def runtime_requirements(locked: Mapping[str, Locked], pyproject: Mapping[str, Any]) -> list[Locked]:
    """The packages the app needs to run: pyproject's main dependencies (and `spaces`, ZeroGPU's
    package, when the lock has it), then every locked package one of them requires, repeated
    until nothing is added. Test and development tools (extras) and what only they need stay out."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    needed: set[str] = {canonicalize_name(Requirement(text).name) for text in pyproject["project"]["dependencies"]}
    needed |= {"spaces"} & locked.keys()
    missing = sorted(needed - locked.keys())
    if missing:
        raise UsageError(f"requirements/lock.txt has no pin for {', '.join(missing)}: refresh it with `make lock`")
    grown = True
    while grown:
        added = {name for name, pin in locked.items() if name not in needed and pin.required_by & needed}
        needed |= added
        grown = bool(added)
    return [locked[name] for name in sorted(needed)]


def requirements_text(packages: Sequence[Locked]) -> str:
    # A local build label (2.14.1+cpu) names a wheel of one machine's index; PyPI has the plain version.
    lines = [f"{pin.name}=={pin.version.split('+')[0]}" for pin in packages]
    return ("# The Space's runtime packages at the versions of Gemma Arena's requirements/lock.txt\n"
            "# (written by `python app.py space-bundle`; no test or development tools).\n" + "\n".join(lines) + "\n")


def lock_python(lock_text: str) -> str:
    """The Python version the lock was resolved for (pip-compile's header), else this one."""
    found = re.search(r"pip-compile with Python (\d+\.\d+)", lock_text)
    return found[1] if found else f"{sys.version_info.major}.{sys.version_info.minor}"


def app_code(pyproject: Mapping[str, Any]) -> list[str]:
    """The modules and packages pyproject.toml installs: exactly the code the app imports."""
    setuptools = pyproject["tool"]["setuptools"]
    patterns = setuptools["packages"]["find"]["include"]
    packages = sorted(
        path.name for path in REPO.iterdir()
        if (path / "__init__.py").is_file() and any(fnmatch.fnmatchcase(path.name, p) for p in patterns)
    )
    return [f"{module}.py" for module in setuptools.get("py-modules", [])] + packages


def copy_app_code(code: Sequence[str], out: Path) -> None:
    """Copy the app's modules and packages into `out`, replacing earlier copies whole (a module
    removed from the sources must not linger in the Space)."""
    for name in code:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target)


def readme_text(
    specs: Sequence[VariantSpec], hardware: Hardware, gradio_version: str, python_version: str,
    repos: Sequence[str], dataset: str | None,
) -> str:
    """The Space's README: front matter from spaces/front_matter.yaml and the build, body from
    spaces/README.md.jinja, rendered and checked by huggingface_hub's SpaceCard."""
    import yaml
    from huggingface_hub import SpaceCard, SpaceCardData

    models = list(dict.fromkeys(repos))
    # preload_from_hub names a revision only after an explicit file list; a pinned revision is
    # fetched at start-up instead of preloading the default branch for nothing.
    pinned = {spec.target for spec in specs if hub_checkpoint(spec) and spec.options.get("revision")}
    preload = [repo for repo in models if repo not in pinned]
    fixed = yaml.safe_load((TEMPLATES / "front_matter.yaml").read_text())
    card_data = SpaceCardData(
        **fixed, sdk_version=gradio_version, python_version=python_version, suggested_hardware=hardware.flavor,
        models=models or None, datasets=[dataset] if dataset else None, preload_from_hub=preload or None,
    )
    card_data.to_yaml(original_order=FRONT_MATTER_ORDER)  # keeps this order in the card
    rows = [
        {"label": spec.label.replace("|", "\\|"), "spec": str(spec).replace("|", "\\|"),
         "weights": _weights(spec)}
        for spec in specs
    ]
    card = SpaceCard.from_template(
        card_data, template_path=str(TEMPLATES / "README.md.jinja"), variants=rows,
        has_demo=any(spec.prefix == "demo" for spec in specs), preloaded=bool(preload), hardware=hardware.flavor,
        hardware_reason=hardware.reason, dataset=dataset, gradio_version=gradio_version,
        python_version=python_version,
    )
    return str(card).rstrip() + "\n"


def _weights(spec: VariantSpec) -> str:
    repo = hub_checkpoint(spec)
    if repo:
        return f"[{repo}](https://huggingface.co/{repo})"
    return {"demo": "built when the Space starts (random)"}.get(spec.prefix, "on the engine's server")
