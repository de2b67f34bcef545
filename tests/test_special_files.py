"""Issue 30 item 4: one check that a path is a plain file, before anything opens it."""

from __future__ import annotations

import os
import socket

import pytest

from sr_desk.core.errors import ImageReadError, SrDeskError
from sr_desk.core.special_files import (
    NotAFileError,
    check_openable_file,
    check_openable_tree,
    file_problem,
)

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


def test_a_regular_file_and_a_link_to_one_pass(tmp_path):
    plain = tmp_path / "w.safetensors"
    plain.write_bytes(b"x")
    (tmp_path / "link").symlink_to(plain)
    assert file_problem(plain) is None
    assert file_problem(tmp_path / "link") is None
    check_openable_file(tmp_path / "link", "weights file")


@needs_fifo
def test_a_fifo_is_refused_without_opening_it(tmp_path):
    fifo = tmp_path / "weights.ckpt"
    os.mkfifo(fifo)
    with pytest.raises(NotAFileError) as err:
        check_openable_file(fifo, "weights file")  # open() would block here forever
    assert str(err.value) == "cannot open weights file 'weights.ckpt': it is a pipe (FIFO), not a file"
    (tmp_path / "to-fifo").symlink_to(fifo)
    assert file_problem(tmp_path / "to-fifo") == "it is a pipe (FIFO), not a file"


@needs_fifo
def test_a_missing_output_is_fine_but_a_fifo_output_is_not(tmp_path):
    fifo = tmp_path / "out.png"
    os.mkfifo(fifo)
    assert file_problem(tmp_path / "new.png", allow_missing=True) is None
    assert file_problem(fifo, allow_missing=True) == "it is a pipe (FIFO), not a file"


def test_devices_and_sockets_are_refused(tmp_path):
    if os.path.exists("/dev/zero"):
        assert file_problem("/dev/zero") == "it is a device, not a file"
    if not hasattr(socket, "AF_UNIX"):
        return
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert file_problem(path) == "it is a socket, not a file"


def test_a_folder_is_refused_unless_the_caller_takes_folders(tmp_path):
    assert file_problem(tmp_path) == "it is a folder, not a file"
    assert file_problem(tmp_path, allow_folder=True) is None


def test_missing_and_broken_links_say_so(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "gone.bin")
    assert file_problem(tmp_path / "nothing") == "no such file"
    gone = tmp_path / "gone.bin"
    assert file_problem(tmp_path / "dangling") == f"it is a broken link (to '{gone}', which does not exist)"
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert file_problem(tmp_path / "loop") == "it is a link that leads back to itself"


def test_the_caller_chooses_the_error_class_and_the_message_is_one_line(tmp_path):
    with pytest.raises(ImageReadError) as err:
        check_openable_file(tmp_path / "a\nb.png", error=ImageReadError)
    assert str(err.value) == "cannot open 'a?b.png': no such file"
    assert isinstance(err.value, SrDeskError)


@needs_fifo
def test_a_fifo_inside_a_model_folder_is_found(tmp_path):
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text("{}")
    check_openable_tree(tmp_path, "model file")
    os.mkfifo(tmp_path / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(NotAFileError, match="diffusion_pytorch_model.safetensors': it is a pipe"):
        check_openable_tree(tmp_path, "model file")
