"""C2SP signed notes, checkpoints and proofs (deploytrack.tlog.note).

- the signed-note spec's vector (tests/fixtures/merkle/README.md's source: C2SP
  signed-note.md) verifies with its verifier key, and its key ID is reproduced;
- notes, checkpoints, proofs and verifier keys round-trip;
- signatures by unknown keys are ignored, a bad one by a known key refuses the note;
- every malformed input is refused with a one-line LogFormatError, and garbage or a
  damaged note or proof never raises anything else.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploytrack.tlog import LogFormatError
from deploytrack.tlog.merkle import ProofError, inclusion_proof, leaf_hash, subtree_of
from deploytrack.tlog.note import (
    MAX_PROOF_HASHES,
    Checkpoint,
    InclusionProof,
    Signature,
    key_id,
    open_note,
    parse_checkpoint,
    parse_proof,
    parse_verifier_key,
    read_checkpoint,
    sign_note,
    verifier_key,
    verifier_of,
)

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKu"
    "wHjG1Yu72IneyaQM=\n"
).encode()
# The spec's opening example: signed by a key we do not have.
POEM = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    "— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMou"
    "FSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
).encode()
ORIGIN = "deploytrack.local/0b6c9d7e-8d0c-4d53-9a55-9d4c2b1f6e10"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
ROOT = leaf_hash(b"root")


def _refused(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(LogFormatError) as refused:
        call(*args, **kwargs)
    message = str(refused.value)
    assert message and "\n" not in message
    return message


def _checkpoint_note(size: int = 5, root: bytes = ROOT, key: Ed25519PrivateKey = KEY) -> str:
    return sign_note(Checkpoint(ORIGIN, size, root).text(), ORIGIN, key)


# --- the spec's vector ---------------------------------------------------------------------


def test_the_spec_vector_verifies() -> None:
    verifier = parse_verifier_key(SPEC_VKEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id == bytes.fromhex("530d903a")
    assert key_id(verifier.name, verifier.public_key) == bytes.fromhex("530d903a")
    assert verifier_key(verifier.name, verifier.public_key) == SPEC_VKEY
    assert verifier.text() == SPEC_VKEY
    note = open_note(SPEC_NOTE)
    assert note.text == "This is an example message.\n"
    [sig] = note.signatures
    assert (sig.name, sig.key_id, len(sig.signature)) == ("example.com/foo", verifier.key_id, 64)
    assert note.verify(verifier)
    assert note.require_signature([verifier]) == verifier


def test_the_spec_vector_changed_is_refused() -> None:
    verifier = parse_verifier_key(SPEC_VKEY)
    changed = open_note(SPEC_NOTE.replace(b"example message", b"exemple message"))
    assert _refused(changed.verify, verifier) == (
        "the signature by key example.com/foo+530d903a does not verify: the note was changed "
        "after it was signed, or the signature is damaged"
    )
    sig = open_note(SPEC_NOTE).signatures[0]
    for damaged in (sig.signature[:10], sig.signature + b"\x00"):
        line = "— example.com/foo " + base64.b64encode(sig.key_id + damaged).decode() + "\n"
        note = open_note(SPEC_NOTE.split(b"\n\n")[0] + b"\n\n" + line.encode())
        assert _refused(note.verify, verifier, what="checkpoint").startswith(
            "the signature by key example.com/foo+530d903a does not verify: the checkpoint was"
        )
        # one good signature does not excuse a bad one by the same key
        assert _refused(open_note(SPEC_NOTE + line.encode()).verify, verifier)


def test_signatures_by_unknown_keys_are_ignored() -> None:
    verifier = parse_verifier_key(SPEC_VKEY)
    poem = open_note(POEM)
    # the text is split from the signatures at the last blank line
    assert poem.text.endswith("\n\ned è subito sera.\n")
    assert not poem.verify(verifier)
    assert _refused(poem.require_signature, [verifier], what="checkpoint") == (
        "the checkpoint is not signed by key example.com/foo+530d903a: it carries signatures "
        "by quasimodo.example/salvatore+367ba04b"
    )
    # the same name with another ID, or the same ID with another name: another key
    sig = open_note(SPEC_NOTE).signatures[0]
    for name, kid in (("example.com/foo", b"\x00\x00\x00\x00"), ("example.com/bar", sig.key_id)):
        line = "— " + name + " " + base64.b64encode(kid + sig.signature).decode() + "\n"
        both = open_note(SPEC_NOTE + line.encode())
        assert both.verify(verifier)
        assert not open_note(SPEC_NOTE.split(b"\n\n")[0] + b"\n\n" + line.encode()).verify(verifier)


def test_the_checkpoint_spec_example_parses() -> None:
    # c2sp.org/tlog-checkpoint's example, signed by a key we do not have: carried, unchecked
    example = (
        "example.com/behind-the-sofa\n"
        "20852163\n"
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        "\n"
        "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/"
        "Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    ).encode()
    checkpoint = read_checkpoint(example)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.root.hex().startswith("0ac5186a")
    [sig] = open_note(example).signatures
    assert (sig.name, len(sig.signature)) == ("example.com/behind-the-sofa", 64)


# --- round trips ---------------------------------------------------------------------------


def test_a_signed_checkpoint_round_trips() -> None:
    checkpoint = Checkpoint(ORIGIN, 42, ROOT, ("extension one", "two"))
    text = checkpoint.text()
    assert text == f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\nextension one\ntwo\n"
    signed = sign_note(text, ORIGIN, KEY)
    assert signed.startswith(text + "\n— " + ORIGIN + " ")
    note = open_note(signed.encode())
    assert note.text == text
    assert parse_checkpoint(note.text) == checkpoint
    verifier = verifier_of(ORIGIN, KEY.public_key())
    assert parse_verifier_key(verifier.text() + "\n") == verifier
    assert note.require_signature([verifier_of(ORIGIN, OTHER.public_key()), verifier]) == verifier
    assert read_checkpoint(signed.encode(), [verifier]) == checkpoint
    assert read_checkpoint(signed.encode()) == checkpoint
    assert read_checkpoint(text.encode()) == checkpoint


def test_a_note_signed_twice_verifies_with_either_key() -> None:
    once = sign_note("text\n", "a.example", KEY)
    again = sign_note("text\n", "b.example", OTHER).split("\n\n")[1]
    note = open_note((once + again).encode())
    assert [s.name for s in note.signatures] == ["a.example", "b.example"]
    assert note.verify(verifier_of("a.example", KEY.public_key()))
    assert note.verify(verifier_of("b.example", OTHER.public_key()))
    assert not note.verify(verifier_of("b.example", KEY.public_key()))


@settings(max_examples=100, deadline=None)
@given(
    st.text(st.characters(min_codepoint=0x20, exclude_characters="\n"), min_size=1),
    st.integers(0, 2**63 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(st.text(st.characters(min_codepoint=0x20, exclude_characters="\n"), min_size=1)),
)
def test_checkpoints_round_trip(origin: str, size: int, root: bytes, ext: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(ext))
    assert parse_checkpoint(checkpoint.text()) == checkpoint


def test_a_proof_round_trips_and_verifies() -> None:
    leaves = [leaf_hash(b"event %d" % i) for i in range(10)]
    tree = subtree_of(leaves)
    note = _checkpoint_note(10, tree(0, 10))
    verifier = verifier_of(ORIGIN, KEY.public_key())
    for extra in (None, b"", b"deployment 7"):
        proof = InclusionProof(3, tuple(inclusion_proof(3, 10, tree)), note, extra)
        assert parse_proof(proof.text().encode()) == proof
        assert proof.verify(leaves[3], [verifier]) == Checkpoint(ORIGIN, 10, tree(0, 10))
    text = proof.text()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ZGVwbG95bWVudCA3\nindex 3\n")
    assert text.endswith("\n\n" + note)
    with pytest.raises(ProofError, match="does not lead to the root"):
        proof.verify(leaves[4], [verifier])
    assert _refused(proof.verify, leaves[3], [verifier_of(ORIGIN, OTHER.public_key())]).startswith(
        f"the checkpoint is not signed by key {ORIGIN}+"
    )
    assert _refused(proof.verify, leaves[3], [verifier_of("another.log", KEY.public_key())]) == (
        f"the checkpoint is from origin {ORIGIN}, and no key given is that origin's: "
        f"another.log+{key_id('another.log', KEY.public_key()).hex()}"
    )


def test_a_proof_holds_at_most_63_hashes() -> None:
    def proof(n: int) -> bytes:
        return InclusionProof(0, (ROOT,) * n, _checkpoint_note()).text().encode()

    assert len(parse_proof(proof(MAX_PROOF_HASHES)).hashes) == 63
    assert _refused(parse_proof, proof(64)) == "the proof has more than 63 hashes"


# --- malformed input -----------------------------------------------------------------------

GOOD = _checkpoint_note().encode()
SIG = GOOD.split(b"\n\n")[1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD[:-1], "the note's last line has no newline: the note is truncated"),
        (GOOD[:-20], "the note's last line has no newline"),
        (GOOD.replace(b"\n\n", b"\n"), "the note has no blank line before its signatures"),
        (GOOD.split(b"\n\n")[0] + b"\n\n", "the note has no signature line after its blank line"),
        (
            GOOD.replace("—".encode(), b"-"),
            "signature line 1 of the note does not start with an em",
        ),
        (GOOD + b"not a signature\n", "signature line 2 of the note does not start with an em"),
        (GOOD[:-3] + b"!=\n", "the signature of signature line 1 of the note is not base64"),
        (GOOD[:-3] + b"\n", "the signature of signature line 1 of the note is not base64"),
        (
            GOOD[:-3] + (b"R=\n" if GOOD[-3:-1] != b"R=" else b"S=\n"),
            "the signature of signature line 1 of the note is not in canonical base64",
        ),
        (
            GOOD.replace(ORIGIN.encode() + b" ", ORIGIN.encode() + b"  "),
            "the signature of signature line 1 of the note is not base64",
        ),
        (GOOD.replace(b"\xe2\x80\x94 " + ORIGIN.encode(), b"\xe2\x80\x94 "), "the key name of"),
        (GOOD.replace(b"\xe2\x80\x94 d", b"\xe2\x80\x94 a+d"), "the key name of signature line 1"),
        (
            b"text\n\n\xe2\x80\x94 a AAAAAA==\n",
            "the signature of signature line 1 of the note is 4",
        ),
        (GOOD.replace(b"\n5\n", b"\n5\r\n"), "the note has a control character ('\\r') on line 2"),
        (b"a\tb\n" + GOOD, "the note has a control character ('\\t') on line 1"),
        (b"a\x00b\n" + GOOD, "the note has a control character ('\\x00') on line 1"),
        (b"\xff" + GOOD, "the note is not UTF-8 text (byte 0)"),
        (GOOD + SIG * 100, "the note has more than 100 signatures"),
        (GOOD + b"x" * (1 << 20), "the note is larger than 1048576 bytes"),
    ],
)
def test_a_malformed_note_is_refused(data: bytes, message: str) -> None:
    assert _refused(open_note, data).startswith(message)


def test_a_note_may_carry_a_hundred_signatures() -> None:
    assert len(open_note(GOOD + SIG * 99).signatures) == 100
    assert _refused(open_note, GOOD, max_size=len(GOOD) - 1).startswith("the note is larger")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ORIGIN}\n05\n{{root}}\n", "the checkpoint's tree size is not a decimal number"),
        (f"{ORIGIN}\n+5\n{{root}}\n", "the checkpoint's tree size is not a decimal number"),
        (f"{ORIGIN}\n-5\n{{root}}\n", "the checkpoint's tree size is not a decimal number"),
        (f"{ORIGIN}\n 5\n{{root}}\n", "the checkpoint's tree size is not a decimal number"),
        (f"{ORIGIN}\n٥\n{{root}}\n", "the checkpoint's tree size is not a decimal number"),
        (f"{ORIGIN}\n5.0\n{{root}}\n", "the checkpoint's tree size is not a decimal number"),
        (f"{ORIGIN}\n{'9' * 30}\n{{root}}\n", "the checkpoint's tree size is not a decimal"),
        (f"{ORIGIN}\n{2**63}\n{{root}}\n", "the checkpoint's tree size is larger than 2^63 - 1"),
        (f"{ORIGIN}\n5\n{{short}}\n", "the checkpoint's root hash is 31 bytes, not 32"),
        (f"{ORIGIN}\n5\n{{long}}\n", "the checkpoint's root hash is 33 bytes, not 32"),
        (f"{ORIGIN}\n5\nnot base64!\n", "the checkpoint's root hash is not base64"),
        (f"{ORIGIN}\n5\n{{root}}", "the checkpoint's last line has no newline"),
        (f"{ORIGIN}\n5\n", "the checkpoint has 2 lines: it needs three"),
        ("\n5\n{root}\n", "line 1 of the checkpoint is empty"),
        (f"{ORIGIN}\n5\n{{root}}\n\n", "line 4 of the checkpoint is empty"),
        (f"{ORIGIN}\n5\n{{root}}\next\x1b\n", "the checkpoint has a control character ('\\x1b')"),
    ],
)
def test_a_malformed_checkpoint_is_refused(text: str, message: str) -> None:
    b64 = base64.b64encode
    text = text.format(
        root=b64(ROOT).decode(), short=b64(ROOT[:31]).decode(), long=b64(ROOT + b"!").decode()
    )
    assert _refused(parse_checkpoint, text).startswith(message)


def test_a_root_in_another_base64_spelling_is_refused() -> None:
    # the last character's low bits are not zero: decodes to the same bytes, another text
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    good = base64.b64encode(ROOT).decode()
    other = good[:-2] + alphabet[alphabet.index(good[-2]) ^ 1] + "="
    assert base64.b64decode(other) == ROOT
    assert _refused(parse_checkpoint, f"{ORIGIN}\n5\n{other}\n").startswith(
        "the checkpoint's root hash is not in canonical base64"
    )


def test_checkpoints_and_notes_are_made_well_formed() -> None:
    assert _refused(Checkpoint, "", 1, ROOT) == "the checkpoint's origin is empty"
    assert _refused(Checkpoint, ORIGIN, -1, ROOT) == "the checkpoint's tree size -1 is out of range"
    assert _refused(Checkpoint, ORIGIN, 1, ROOT[:5]).startswith("the checkpoint's root hash is 5")
    assert _refused(Checkpoint, ORIGIN, 1, ROOT, ("",)).startswith("a checkpoint's lines are")
    assert _refused(Checkpoint, "a\nb", 1, ROOT).startswith("a checkpoint's lines are")
    assert (
        _refused(sign_note, "no newline", ORIGIN, KEY) == "the text of a note ends with a newline"
    )
    assert _refused(sign_note, "a\x07\n", ORIGIN, KEY).startswith("the text of the note has a")
    assert _refused(sign_note, "a\n", "a b", KEY).startswith("the key name 'a b' has a space")
    assert _refused(sign_note, "a\n", "", KEY) == "the key name is empty"
    assert _refused(verifier_of, "a+b", KEY.public_key()).startswith("the key name 'a+b' has")


def test_read_checkpoint_wants_a_signature_when_given_keys() -> None:
    verifier = verifier_of(ORIGIN, KEY.public_key())
    bare = Checkpoint(ORIGIN, 5, ROOT).text().encode()
    assert _refused(read_checkpoint, bare, [verifier]) == (
        "the checkpoint is not signed: it has no signature lines"
    )
    assert _refused(read_checkpoint, b"\xff\n", []).startswith("the checkpoint is not UTF-8")
    assert _refused(read_checkpoint, GOOD, [], max_size=10).startswith("the checkpoint is larger")
    other = verifier_of(ORIGIN, OTHER.public_key())
    assert _refused(read_checkpoint, GOOD, [other]).startswith(
        f"the checkpoint is not signed by key {ORIGIN}+{other.key_id.hex()}: it carries "
        f"signatures by {ORIGIN}+{verifier.key_id.hex()}"
    )


def _proof(**change: Any) -> bytes:
    lines = ["c2sp.org/tlog-proof@v1", "index 3", base64.b64encode(ROOT).decode(), ""]
    text = "\n".join(lines) + "\n" + GOOD.decode()
    for old, new in change.items():
        text = text.replace(old.replace("_", " "), new, 1)
    return text.encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_proof(**{"c2sp.org/tlog-proof@v1": "c2sp.org/tlog-proof@v2"}), "the proof does not"),
        (_proof(index_3="index 03"), "the proof's index is not a decimal number"),
        (_proof(index_3="index -3"), "the proof's index is not a decimal number"),
        (_proof(index_3="index"), "the proof has no 'index N' line"),
        (_proof(index_3="extra !!!\nindex 3"), "the proof's extra data is not base64"),
        (_proof(index_3="index 3\nextra AA=="), "hash 1 of the proof is not base64"),
        (_proof(index_3="index 3\nAAAA"), "hash 1 of the proof is 3 bytes, not 32"),
        (b"c2sp.org/tlog-proof@v1\nindex 3\n", "the proof ends before its blank line"),
        (b"c2sp.org/tlog-proof@v1\nindex 3\nAAAA", "hash 1 of the proof is 3 bytes"),
        (_proof()[:-1], "the note's last line has no newline"),
        (_proof() + b"\n", "the note has no signature line after its blank line"),
        (_proof() + b"x\n", "signature line 2 of the note does not start with an em dash"),
        (_proof(**{"\n\n" + ORIGIN: "\n\n\n" + ORIGIN}), "line 1 of the checkpoint is empty"),
        (b"\xfe" + _proof(), "the proof is not UTF-8 text (byte 0)"),
        (_proof() + b"A" * (1 << 20), "the proof is larger than 1048576 bytes"),
    ],
)
def test_a_malformed_proof_is_refused(data: bytes, message: str) -> None:
    assert _refused(parse_proof, data).startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("example.com/foo+530d903a", "a verifier key is NAME+KEYID+KEY (three parts joined by"),
        ("a+b", "a verifier key is NAME+KEYID+KEY (three parts joined by '+'), got 2 parts"),
        (SPEC_VKEY + "+x", "the verifier key's public key is not base64"),
        (SPEC_VKEY.replace("530d903a", "530D903A"), "the verifier key's ID is not 8 lowercase"),
        (SPEC_VKEY.replace("530d903a", "530d903b"), "the verifier key's ID 530d903b does not"),
        (SPEC_VKEY.replace("example.com/foo", "example.com/bar"), "the verifier key's ID 530d903a"),
        (SPEC_VKEY.replace("+AekyeR", "+AukyeR"), "the verifier key's signature type is 0x02"),
        (SPEC_VKEY[:-1], "the verifier key's public key is not base64"),
        (SPEC_VKEY[:-4], "the verifier key's Ed25519 key is 29 bytes, not 32"),
        (SPEC_VKEY.replace("example.com/foo", "a b"), "the verifier key's name 'a b' has a space"),
        ("+530d903a+" + SPEC_VKEY.split("+")[2], "the verifier key's name is empty"),
        ("a+530d903a+AQ==", "the verifier key's Ed25519 key is 0 bytes, not 32"),
        ("a+530d903a+", "the verifier key's signature type is missing"),
        ("x" * 5000, "the verifier key is longer than 4096 characters"),
    ],
)
def test_a_malformed_verifier_key_is_refused(text: str, message: str) -> None:
    assert _refused(parse_verifier_key, text).startswith(message)


def test_a_message_escapes_what_it_quotes() -> None:
    message = _refused(open_note, GOOD.replace("—".encode(), b"\xe2\x80\xae"))
    assert "\\u202e" in message and "\u202e" not in message


# --- never a traceback ---------------------------------------------------------------------


def _survives(call: Any, data: Any) -> None:
    try:
        call(data)
    except LogFormatError as exc:
        assert str(exc) and "\n" not in str(exc)


_GARBAGE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_PIECES = st.sampled_from(
    [b"\n", b"\n\n", "— ".encode(), b"+", b"=", b"index ", b"extra ", b"0", b"AAAA", b"\xff"]
)
_MIXED = st.lists(st.one_of(st.binary(max_size=8), _PIECES), max_size=30).map(b"".join)


@_GARBAGE
@given(st.one_of(st.binary(max_size=300), _MIXED))
def test_garbage_is_refused_in_one_line(data: bytes) -> None:
    _survives(open_note, data)
    _survives(parse_proof, b"c2sp.org/tlog-proof@v1\n" + data)
    _survives(read_checkpoint, data)
    text = data.decode("utf-8", "replace")
    _survives(parse_checkpoint, text)
    _survives(parse_verifier_key, text)


@_GARBAGE
@given(st.data())
def test_a_damaged_proof_is_refused_in_one_line(data: st.DataObject) -> None:
    leaves = [leaf_hash(b"%d" % i) for i in range(7)]
    tree = subtree_of(leaves)
    proof = InclusionProof(5, tuple(inclusion_proof(5, 7, tree)), _checkpoint_note(7, tree(0, 7)))
    good = bytearray(proof.text().encode())
    at = data.draw(st.integers(0, len(good) - 1))
    how = data.draw(st.sampled_from(["flip", "cut", "drop", "insert"]))
    if how == "flip":
        good[at] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "cut":
        del good[at:]
    elif how == "drop":
        del good[at]
    else:
        good[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    verifier = verifier_of(ORIGIN, KEY.public_key())

    def verify(raw: bytes) -> None:
        parsed = parse_proof(raw)
        checkpoint = parsed.verify(leaves[5], [verifier])
        # What still verifies differs at most in unsigned bytes: never in what is proved.
        assert (parsed.index, checkpoint) == (5, Checkpoint(ORIGIN, 7, tree(0, 7)))

    _survives(verify, bytes(good))


def test_signature_is_a_tuple() -> None:
    sig = Signature("a", b"\x00" * 4, b"s")
    name, kid, raw = sig
    assert (name, kid, raw) == ("a", b"\x00" * 4, b"s")
    assert sig.label == "a+00000000"
