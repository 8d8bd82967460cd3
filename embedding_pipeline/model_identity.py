"""Which models made a collection's vectors, kept with the collection, so that a model changed in place (new
files in the same folder, new weights served under the same name) is never mixed with the old one's vectors.

A model read from files is known by a digest of them; one that answers requests (LiteLLM, or any encoder
without files of its own) by its vector for a fixed probe text, made once at a run's start. A run whose models
are not those that made the collections it would write is refused, unless it is a re-embed: that writes into
collections of their own, `{base}.{kind}.{version}-{key}`, while searches stay on the old ones until every
partition holds the new (`vector_store.aliases`), as for any other change of the models' settings.
"""

import base64
import contextlib
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedding_pipeline.digests import digest
from embedding_pipeline.errors import PermanentError
from embedding_pipeline.files import atomic_write
from embedding_pipeline.vector_store import COLLECTION_KINDS, VectorStore
from embedding_pipeline.vector_store.aliases import CollectionNames

PROBE_TEXT = "Probe of the embedding model: lecture notes on linear algebra, eigenvalues and the four subspaces."
# Cosine similarity of a probe's vectors from one model, or from two. A provider's repeated answers for one text
# differ by numeric noise only (batching and GPU kernels: OpenAI's agree to 0.9999 and better, a model run here
# exactly); another model of the same dimension, even a re-quantization or a fine-tune of the same one, moves the
# vector of a text further (unrelated models agree to about 0). 0.999 leaves ten times the noise.
PROBE_AGREEMENT = 0.999
DOCUMENTATION = ("readme", "license", "notice")  # files in a model's folder that do not make its vectors
# The digests of models' files, by folder and the files' sizes, times and inodes: a process need not read them.
DIGESTS_KEPT_MOST = 64
DIGESTS_KEPT = (
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "embedding-pipeline" / "model-digests.json"
)


class ModelChanged(PermanentError):
    """The models are not those that made the collections a run would write: a re-embed is the way to change."""


@dataclass(frozen=True)
class Fingerprint:
    """What tells a model's vectors from another's under the same name: a digest of its files, or its vector
    for PROBE_TEXT (float32, base64)."""

    setting: str  # where the model comes from, said when it changed: "QDRANT_DENSE_MODEL_PATH=/models/x"
    files: str = ""
    probe: str = ""

    @classmethod
    def of_files(cls, folder: str | Path, setting: str) -> "Fingerprint":
        return cls(setting, files=files_digest(Path(folder)))

    @classmethod
    def of_probe(cls, vector: np.ndarray, setting: str) -> "Fingerprint":
        return cls(setting, probe=base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode())

    def kept(self) -> dict:
        return {"files": self.files} if self.files else {"probe": self.probe}

    def differs_from(self, kept: dict) -> str | None:
        """Why this is not the model `kept` describes; None if it is."""
        if self.files and kept.get("files"):
            same = self.files == kept["files"]
            return None if same else f"its files differ (sha256 {self.files[:12]} now, {kept['files'][:12]} before)"
        if self.probe and kept.get("probe"):
            now, before = _vector(self.probe), _vector(kept["probe"])
            if now.shape != before.shape:
                return f"it makes vectors of {now.size} dimensions, the old one made {before.size}"
            agreement = _cosine(now, before)
            if agreement >= PROBE_AGREEMENT:
                return None
            return f"its vector for a probe text agrees to {agreement:.4f} with the old one's (the same model: >= {PROBE_AGREEMENT})"
        then, now = ("files", "answers") if kept.get("files") else ("answers", "files")
        return f"the old vectors came from a model known by its {then}, this one by its {now}: nothing shows they agree"


@dataclass(frozen=True)
class ModelIdentity:
    """The dense and the sparse model of a run (the sparse one where it has files of its own)."""

    dense: Fingerprint
    sparse: Fingerprint | None = None

    @classmethod
    def of(cls, dense, sparse) -> "ModelIdentity":
        """The identity of a dense and a sparse encoder, by their `fingerprint()`."""
        return cls(dense.fingerprint(), sparse.fingerprint())

    def kept(self) -> dict:
        """What is kept with the collections these models write."""
        return {"dense": self.dense.kept(), "sparse": self.sparse.kept() if self.sparse else None}

    def differs_from(self, kept: dict) -> str | None:
        """`setting: why` for the first model that is not the one `kept` names; None if both are."""
        for model, before in ((self.dense, kept.get("dense")), (self.sparse, kept.get("sparse"))):
            why = model.differs_from(before) if model and before else None
            if why:
                return f"{model.setting}: {why}"
        return None


def collections_for(
    store: VectorStore, names: CollectionNames, models: ModelIdentity, reembed: bool
) -> CollectionNames:
    """The collections a run writes: this version's that these models made (collections that keep no models are
    taken as theirs, and now keep them), or this version's if none exists yet. Where only other models' exist, a
    re-embed gets collections of its own and any other run is refused: it would mix two models' vectors."""
    made = _made(store, names)
    found = _made_by(made, models)
    if found is not None:
        for name, kept in made[found].items():
            if kept is None:
                store.keep_model(name, models.kept())
        return CollectionNames(names.base, found)
    if not made:
        return names
    if reembed:  # the same key in every process that sees these collections: partitions at once agree
        return CollectionNames(names.base, f"{names.version}-{digest(names.version, sorted(made), length=6)}")
    name, kept = next((n, k) for version in made.values() for n, k in version.items() if k is not None)
    raise ModelChanged(
        f"{models.differs_from(kept)}: this is not the model that made {name}, and writing would mix two "
        "models' vectors, so nothing was written. To change models, re-embed into new collections (searches "
        "stay on the old ones until it is done): `embedding-pipeline embed --reembed` (run config `reembed: true`), "
        "or a backfill of every partition; or put the old model back"
    )


def collections_made_by(store: VectorStore, names: CollectionNames, models: ModelIdentity) -> CollectionNames:
    """The collections these models made, else this version's (what the checks and `repair` look at)."""
    found = _made_by(_made(store, names), models)
    return names if found is None else CollectionNames(names.base, found)


def _made(store: VectorStore, names: CollectionNames) -> dict[str, dict[str, dict | None]]:
    """Version → {collection: the models it keeps, or None}, for the collections of this version of the settings
    (`{alias}.{version}`, and `{alias}.{version}-{key}` of re-embeds), the settings' own version first."""
    made: dict[str, dict[str, dict | None]] = {}
    for name in store.collections():
        for kind in COLLECTION_KINDS:
            version = name.removeprefix(f"{names.alias(kind)}.")
            if version != name and (version == names.version or version.startswith(f"{names.version}-")):
                if "." not in version:  # not a repair's staging collection
                    made.setdefault(version, {})[name] = store.model_of(name)
    return dict(sorted(made.items(), key=lambda item: (item[0] != names.version, item[0])))


def _made_by(made: dict[str, dict[str, dict | None]], models: ModelIdentity) -> str | None:
    """The first version whose collections keep these models, or keep none."""
    for version, collections in made.items():
        if all(models.differs_from(kept) is None for kept in collections.values() if kept is not None):
            return version
    return None


def files_digest(folder: Path) -> str:
    """sha256 of a model's files (paths and contents; hidden files and documentation left out). 100 MB take 0.2 s,
    so it is kept, in this process and in DIGESTS_KEPT, for as long as no file's size, times or inode change
    (a write always moves a file's ctime)."""
    files = sorted(
        path for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and not path.name.lower().startswith(DOCUMENTATION) and path.suffix.lower() != ".md"
    )  # fmt: skip
    stamps = tuple(
        (str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        for path, stat in ((path, path.stat()) for path in files)
    )
    return _digest_of(folder.resolve(), stamps)


@functools.lru_cache(maxsize=8)
def _digest_of(folder: Path, stamps: tuple) -> str:
    key = digest(str(folder), stamps)
    try:
        kept = json.loads(DIGESTS_KEPT.read_text())
    except (OSError, ValueError):
        kept = {}
    if key in kept:
        return kept[key]
    whole = hashlib.sha256()
    for relative, *_ in stamps:
        whole.update(relative.encode() + b"\0")
        with open(folder / relative, "rb") as file:
            whole.update(hashlib.file_digest(file, "sha256").digest())
    with contextlib.suppress(OSError):  # a home that cannot be written: computed again next time
        with atomic_write(DIGESTS_KEPT) as out:
            json.dump(dict([*list(kept.items())[-DIGESTS_KEPT_MOST + 1 :], (key, whole.hexdigest())]), out)
    return whole.hexdigest()


def _vector(encoded: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float64)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / norms) if norms else 0.0
