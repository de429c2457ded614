"""The status texts say which backend is active and why, from settings/env, without loading torch."""

from __future__ import annotations

from annotator.backends import backend_status


def test_no_weights_says_flow_and_grabcut():
    st = backend_status({}, env={})
    assert not st.sam_ready and st.propagator == "flow"
    assert st.sam_text == "SAM: off (no checkpoint)" and "GrabCut" in st.details
    assert "optical flow" in st.propagator_text
    assert "VPS_SAM" in st.details or "checkpoint" in st.details


def test_configured_checkpoints_are_reported(tmp_path):
    sam = tmp_path / "sam_vit_b.pth"
    stcn = tmp_path / "stcn.pth"
    sam.write_bytes(b"x")
    stcn.write_bytes(b"x")
    env = {"VPS_SAM_VIT_B_CHECKPOINT": str(sam), "VPS_STCN_CHECKPOINT": str(stcn)}
    st = backend_status({}, env=env)
    assert st.sam_ready and st.sam_text == "SAM: vit_b"
    assert st.propagator == "flow" and "STCN available" in st.propagator_text
    st = backend_status({"propagator": "memory"}, env=env)
    assert st.propagator == "memory" and "STCN memory" in st.propagator_text


def test_missing_checkpoint_file_is_named(tmp_path):
    st = backend_status({}, env={"VPS_STCN_CHECKPOINT": str(tmp_path / "nope.pth")})
    assert st.propagator == "flow"
    assert "nope.pth" in st.details
