"""SimulatedLink: the simulator's packets through the reassembler, with telemetry."""

import math

import numpy as np

from hipsense.exercises import load_library
from hipsense.link import SimulatedLink
from hipsense.protocol import Gap, SampleBlock
from hipsense_sim import LinkSpec, ScenarioSpec, SetSpec, simulate


async def test_streams_every_delivered_sample_and_reports_the_losses() -> None:
    spec = ScenarioSpec(
        name="link",
        exercise="clamshell",
        seed=4,
        sets=[SetSpec(reps=4)],
        link=LinkSpec(loss_ratio=0.05),
    )
    result = simulate(spec, load_library()["clamshell"])
    blocks: list[SampleBlock] = []
    gaps: list[Gap] = []
    async with SimulatedLink(result, speed=math.inf) as link:
        assert link.telemetry.connected
        async for item in link.items():
            if isinstance(item, SampleBlock):
                blocks.append(item)
            elif isinstance(item, Gap):
                gaps.append(item)
    assert not link.telemetry.connected
    delivered = int(result.delivery.received.sum())
    assert sum(b.count for b in blocks) == delivered
    t = np.concatenate([b.t_host_s for b in blocks])
    assert np.all(np.diff(t) > 0)
    # Every lost run of the truth is one gap, with the same number of samples.
    assert [g.lost_samples for g in gaps] == [g["lost_samples"] for g in result.truth["gaps"]]
    sent = result.delivery.sent
    lost = sent - len(set(result.delivery.packets))
    assert link.telemetry.stream is not None
    assert link.telemetry.stream.lost_packets == lost
    assert link.telemetry.loss_pct == 100.0 * lost / sent
    assert link.telemetry.packets_per_s > 0
