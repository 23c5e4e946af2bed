"""Reading TensorBoard event files back with TensorBoard's own code (its EventAccumulator, its
HParams plugin over its data provider), for the tests of ``ckptstore tensorboard``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def session_ends(run_dir: Path) -> int:
    """How many HParams session-end summaries a run's event file holds."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    tags = acc.Tags()["tensors"]
    return len(acc.Tensors(metadata.SESSION_END_INFO_TAG)) if metadata.SESSION_END_INFO_TAG in tags else 0


def read_back(run_dir: Path) -> dict[str, list[tuple[int, float, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    return {tag: [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def hparams_view(logdir: Path) -> tuple[Any, dict[str, Any]]:
    """What TensorBoard's HPARAMS tab asks its backend for: the experiment (hyperparameters
    with their domains, metrics) and the session groups (a run each, with its hparams, last
    metric values and status), through the real plugin over the real data provider."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    tb = base_plugin.TBContext(logdir=str(logdir), multiplexer=multiplexer,
                               data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(logdir)))
    backend, ctx = backend_context.Context(tb), context.RequestContext()
    experiment = get_experiment.Handler(ctx, backend, "", api_pb2.GetExperimentRequest(include_metrics=True)).run()
    every_status = [api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING]
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, allowed_statuses=every_status,
                                               include_metrics=True)
    groups = list_session_groups.Handler(ctx, backend, "", request).run().session_groups
    return experiment, {g.name: g for g in groups}


def proto_value(v: Any) -> Any:
    """A google.protobuf.Value as Python."""
    return getattr(v, v.WhichOneof("kind"))


def markers(run_dir: Path) -> dict[int, str]:
    """The checkpoint markers (text summaries) of a run's event file, by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ckptstore.tensorboard import CHECKPOINTS_TAG

    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    if CHECKPOINTS_TAG not in acc.Tags()["tensors"]:
        return {}
    assert acc.SummaryMetadata(CHECKPOINTS_TAG).plugin_data.plugin_name == "text"
    return {e.step: e.tensor_proto.string_val[0].decode() for e in acc.Tensors(CHECKPOINTS_TAG)}
