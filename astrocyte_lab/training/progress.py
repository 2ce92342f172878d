"""Show a job's progress with ``tqdm.auto`` (a bar in notebooks, text in terminals)."""

from __future__ import annotations

from tqdm.auto import tqdm

from astrocyte_lab.training.jobs import Event, Job


def follow(job: Job, leave: bool = True) -> tqdm:
    """Attach a progress bar to ``job``: batch steps advance it; epochs and status lines show in its text."""
    bar = tqdm(total=job.status().total, desc=job.name, unit="batch", leave=leave)

    def update(event: Event) -> None:
        status = job.status()
        if status.total and bar.total != status.total:
            bar.total = status.total
        if event.kind == "batch":
            bar.update(max(0, status.step - bar.n))
            bar.set_postfix(loss=f"{event.values.get('loss', float('nan')):.3f}", refresh=False)
        elif event.kind == "epoch":
            shown = {k: f"{v:.3f}" for k, v in event.values.items() if k.startswith("val_")}
            bar.set_postfix(epoch=event.epoch, **shown)
        elif event.kind in ("status", "error", "cancelled"):
            bar.write(event.message)
        if event.kind in ("done", "error", "cancelled"):
            bar.close()

    job.subscribe(update)
    return bar
