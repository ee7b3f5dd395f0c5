"""The gob reader and RoadRunner's beanstalk Item writer (rrgrpc/jobs/gob.py) against bytes made by
Go's own encoding/gob (go1.26), with RoadRunner's Item types."""

from __future__ import annotations

import pytest

from rrgrpc.jobs import gob

# gob.NewEncoder(...).Encode(&Item{Job: "App\\Job", Ident: "id-1", Payload: []byte(`{"a":1}`),
#   Options: &Options{Priority: 4, Pipeline: "p", Delay: 2, AutoAck: true}}) with RoadRunner's current
# beanstalk Item (Payload []byte, headers unexported)
GO_ITEM = bytes.fromhex(
    "3c7f030101044974656d01ff8000010401034a6f62010c0001054964656e74010c0001075061796c6f6164010a000107"
    "4f7074696f6e7301ff820000004fff81030101074f7074696f6e7301ff8200010501085072696f726974790104000108"
    "506970656c696e65010c00010544656c617901040001074175746f41636b01020001055175657565010c00000026ff80"
    "01074170705c4a6f62010469642d3101077b2261223a317d010108010170010401010000"
)
# the same with the Item of RoadRunner releases before 2023 (Payload string, Headers exported, Delay int64):
# &Item{Job: "Old", Ident: "id-2", Payload: "text", Headers: {"a": ["1", "2"]}, Options: &Options{Pipeline: "p"}}
GO_OLD_ITEM = bytes.fromhex(
    "497f030101044974656d01ff8000010501034a6f62010c0001054964656e74010c0001075061796c6f6164010c000107"
    "4865616465727301ff840001074f7074696f6e7301ff8600000024ff83040101136d61705b737472696e675d5b5d7374"
    "72696e6701ff8400010c01ff8200000cff81020102ff8200010c000045ff85030101074f7074696f6e7301ff86000104"
    "01085072696f726974790104000108506970656c696e65010c00010544656c617901040001074175746f41636b010200"
    "000022ff8001034f6c64010469642d32010474657874010101610201310132010201700000"
)
# what encode_item writes for the call below; Go's gob.Decoder reads it into RoadRunner's Item
# (Job, Ident, Payload, every Options field; Headers skipped), checked when this vector was made
OURS = bytes.fromhex(
    "497f030101044974656d01ff8000010501034a6f62010c0001054964656e74010c0001075061796c6f6164010a000107"
    "4f7074696f6e7301ff820001074865616465727301ff840000004fff81030101074f7074696f6e7301ff820001050108"
    "5072696f726974790104000108506970656c696e65010c00010544656c617901040001074175746f41636b0102000105"
    "5175657565010c00000024ff83040101136d61705b737472696e675d5b5d737472696e6701ff8400010c01ff86000016"
    "ff85020101085b5d737472696e6701ff8600010c00003aff8001074170705c4a6f62010469642d3101077b2261223a31"
    "7d0101080101700104010101047475626500010201680201760177017801013100"
)


def test_reads_roadrunners_item() -> None:
    assert gob.decode(GO_ITEM) == {
        "Job": "App\\Job", "Ident": "id-1", "Payload": b'{"a":1}',
        "Options": {"Priority": 4, "Pipeline": "p", "Delay": 2, "AutoAck": True},
    }


def test_reads_the_item_of_older_roadrunner_releases() -> None:
    assert gob.decode(GO_OLD_ITEM) == {
        "Job": "Old", "Ident": "id-2", "Payload": "text", "Headers": {"a": ["1", "2"]},
        "Options": {"Pipeline": "p"},
    }


def test_writes_roadrunners_item_with_headers() -> None:
    body = gob.encode_item(job="App\\Job", ident="id-1", payload=b'{"a":1}', priority=4, pipeline="p", delay=2,
                           auto_ack=True, queue="tube", headers={"h": ["v", "w"], "x": ["1"]})
    assert body == OURS
    assert gob.decode(body)["Headers"] == {"h": ["v", "w"], "x": ["1"]}


@pytest.mark.parametrize("body", [b"", b"plain text", b'{"job":"x"}', GO_ITEM[:40], b"\x03\x7f\x03\x09"])
def test_anything_else_is_a_gob_error(body: bytes) -> None:
    with pytest.raises(gob.GobError):
        gob.decode(body)
