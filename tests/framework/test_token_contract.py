"""The token contract: every mismatching field named with both stages; producers that declare nothing are caught."""
from soundstage.token_contract import TokenExpectation, TokenStream, stream_mismatches, streams_problems

CODES = TokenStream("acoustic", vocab_size=1024, frame_rate=50.0, levels=8, sample_rate=16000)


def test_a_matching_stream_has_no_mismatch_and_none_fields_are_not_checked():
    assert stream_mismatches(TokenExpectation("acoustic", 1024, 50.0, levels=8), CODES) == []
    assert stream_mismatches(TokenExpectation("acoustic", None, None, min_levels=3), CODES) == []
    unknown = TokenStream("acoustic", None, None, None)  # a pretrained checkpoint not on this machine
    assert stream_mismatches(TokenExpectation("acoustic", 512, 75.0, levels=4), unknown) == []


def test_every_mismatching_field_is_named_with_the_consumers_config_key():
    wanted = TokenExpectation("acoustic", 512, 75.0, min_levels=12,
                              keys={"vocab_size": "codebook_size", "frame_rate": "acoustic_rate", "levels": "num_coarse"})
    assert stream_mismatches(wanted, CODES) == [
        "vocab_size (config codebook_size): expects 512, gets 1024",
        "frame_rate (config acoustic_rate): expects 75, gets 50",
        "levels (config num_coarse): expects at least 12, gets 8",
    ]


def test_problems_name_consumer_and_producer_and_catch_undeclared_streams():
    available = {"acoustic": ("codec", CODES), "semantic": ("my_tokenizer", None)}
    problems = streams_problems("coarse_lm", [TokenExpectation("acoustic", 512), TokenExpectation("semantic", 64)], available)
    assert problems == [
        "stage 'coarse_lm' does not match the acoustic tokens of stage 'codec': vocab_size: expects 512, gets 1024",
        "stage 'coarse_lm' reads semantic tokens but stage 'my_tokenizer' declares none "
        "(its token_streams() returns no 'semantic' stream)",
    ]
    assert streams_problems("x", [TokenExpectation("semantic", 64)], {}) == []  # a missing producer: the DAG check's


def test_streams_round_trip_through_the_done_marker_dict():
    assert TokenStream.from_dict(CODES.to_dict()) == CODES
