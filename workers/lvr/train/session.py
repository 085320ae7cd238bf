"""One training run's lifecycle around the loop: resume point, events, checkpoints, SIGTERM, final export."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import runtime as R
from .. import storage as store
from .checkpoint import CheckpointStore
from .errors import ConfigError
from .events import EventSink
from .train_config import TrainConfig


class Session:
    def __init__(self, cfg: TrainConfig, env: R.Env, events: EventSink | None = None):
        self.cfg, self.env = cfg, env
        self.events = events or EventSink(cfg.run_id, enabled=env.main)
        self.ckpts = CheckpointStore(cfg.checkpoint_uri, cfg.keep_last)
        self.stop = R.StopFlag()
        self.work = R.cache_root() / "runs" / cfg.run_id / f"rank{env.rank}"
        self.model_dir: Path | None = None
        self.resumed_from: int | None = None
        self.last_saved: int | None = None

    # -- start -----------------------------------------------------------------------------------------------
    def resume_point(self) -> tuple[Path, dict | None]:
        """(model folder, trainer state or None): the newest complete checkpoint, else the spec's model."""
        latest = self.ckpts.latest()
        if latest is None:
            self.model_dir = R.materialise_model_dir(self.cfg.model_uri, self.env)
            return self.model_dir, None
        dest = self.work / "resume"
        manifest = self.ckpts.fetch(latest, dest)
        if manifest.get("stage") != self.cfg.stage or manifest.get("runId") != self.cfg.run_id:
            raise ConfigError(f"checkpoint {self.ckpts.step_uri(latest)} belongs to run {manifest.get('runId')} "
                              f"stage {manifest.get('stage')}, not {self.cfg.run_id}/{self.cfg.stage}")
        if manifest.get("worldSize") != self.env.world:
            # full (unsharded) state is saved, so another world size can load it; the data shards differ though
            sys.stderr.write(f"warning: resuming a world-size {manifest.get('worldSize')} checkpoint on "
                             f"{self.env.world} processes: data order differs from an uninterrupted run\n")
        state = torch.load(dest / "trainer_state.pt", map_location="cpu", weights_only=False)
        state = {**state["ranks"][self.env.rank], "optimizer": state["optimizer"]}
        self.resumed_from = latest
        self.model_dir = dest / "model"
        return self.model_dir, state

    def running(self, step: int, total: int) -> None:
        self.events.event("Running", {"stage": self.cfg.stage, "step": step, "totalSteps": total,
                                      "worldSize": self.env.world, "resumedFrom": self.resumed_from})

    def progress(self, step: int, total: int, data: dict) -> None:
        if step % self.cfg.log_every == 0 or step == total:
            self.events.event("Progress", {"stage": self.cfg.stage, "step": step, "totalSteps": total, **data})

    # -- checkpoints -----------------------------------------------------------------------------------------
    def save(self, step: int, objective, model, optimizer, extra: dict, reason: str = "periodic") -> None:
        """Gather full state, stage it on local disk (rank 0), upload files + MANIFEST.json + _COMPLETE."""
        msd, osd = R.full_state(objective, optimizer, self.env)
        rank_state = {"step": step, **extra}
        states = [None] * self.env.world
        if self.env.world > 1:
            torch.distributed.all_gather_object(states, rank_state)
        else:
            states = [rank_state]
        if self.env.main:
            with tempfile.TemporaryDirectory(prefix="lvr-ckpt-") as tmp:
                local = Path(tmp)
                R.save_model_folder(model, msd, self.model_dir, local / "model")
                torch.save({"ranks": states, "optimizer": osd, "step": step}, local / "trainer_state.pt")
                self.ckpts.save(local, step, {
                    "stage": self.cfg.stage, "runId": self.cfg.run_id, "worldSize": self.env.world,
                    "strategy": self.cfg.strategy, "versions": {"torch": torch.__version__,
                                                                "transformers": _tf_version()},
                    "createdAt": time.time(), "parentStep": self.last_saved})
            self.events.event("CheckpointSaved", {"stage": self.cfg.stage, "step": step,
                                                  "uri": self.ckpts.step_uri(step), "trigger": reason},
                              reason="SIGTERM received; saved and stopping" if reason == "sigterm" else None)
        self.last_saved = step
        R.barrier(self.env)

    # -- end -------------------------------------------------------------------------------------------------
    def finish(self, step: int) -> None:
        """Export the final checkpoint to a bundle (exporter issue), publish it, report success."""
        if self.env.main:
            dest = self.work / "final"
            self.ckpts.fetch(step, dest)
            from ..export import export_bundle

            manifest = export_bundle(str(dest / "model"), self.cfg.bundle_uri, precision="fp32",
                                     run_id=self.cfg.run_id, system_prompt=self.cfg.system_prompt,
                                     log=lambda m: sys.stderr.write(m + "\n"))
            model_id = self.cfg.model_id or f"lvr-{self.cfg.run_id}"
            version = f"{self.cfg.run_id}-step-{step}"
            self.events.model_published(model_id, version, self.cfg.bundle_uri)
            self.events.event("Succeeded", {"stage": self.cfg.stage, "step": step, "bundleUri": self.cfg.bundle_uri,
                                            "modelId": model_id, "version": version,
                                            "bundleFiles": len(manifest.get("files", []))})
            shutil.rmtree(dest, ignore_errors=True)
        R.barrier(self.env)


def _tf_version() -> str:
    import transformers

    return transformers.__version__
