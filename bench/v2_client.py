#!/usr/bin/env python3
"""`graft serve` through a real KServe V2 / Open Inference Protocol client: Triton's
`tritonclient.http` (`pip install "tritonclient[http]" numpy pillow`), the client a Triton or
KServe user already has. Checks health, server and model metadata, model readiness (plain and
at version "1"), and `infer` with a BYTES input (a base64 JPEG, as graft takes it) and an FP32
one (the same image preprocessed here as the model's metadata says), which must agree, in JSON
and as the binary tensor data extension (the client's default), for inputs and outputs; the top
classes of Triton's classification extension; and that an input the model does not have is
refused. Prints the top class.

    python3 bench/v2_client.py HOST:PORT MODEL IMAGE
"""
import base64
import sys

import numpy as np
import tritonclient.http as v2

from preprocess import preprocess


def main(url, model, image):
    c = v2.InferenceServerClient(url)
    assert c.is_server_live() and c.is_server_ready(), "not live or not ready"
    server = c.get_server_metadata()
    assert server["name"] == "graft", server
    assert c.is_model_ready(model) and c.is_model_ready(model, "1"), "model not ready"
    assert not c.is_model_ready(model, "2"), "a version the server does not hold is ready"
    meta = c.get_model_metadata(model)
    classes, pre = meta["parameters"]["classes"], meta["parameters"]["preprocessing"]
    (tensor,) = meta["inputs"]  # one entry a name
    assert (tensor["name"], tensor["datatype"]) == ("input", "FP32"), tensor
    assert meta["parameters"]["encoded_images"]["datatype"] == "BYTES", meta["parameters"]
    size = tensor["shape"][2]

    def infer(inp, version=""):
        out = v2.InferRequestedOutput("probabilities", binary_data=False)
        return c.infer(model, [inp], model_version=version, outputs=[out]).as_numpy("probabilities")

    with open(image, "rb") as f:
        raw = f.read()
    b = v2.InferInput("input", [1], "BYTES")
    b.set_data_from_numpy(np.array([base64.b64encode(raw)], dtype=object), binary_data=False)
    from_bytes = infer(b)
    f = v2.InferInput("input", [1, 3, size, size], "FP32")
    x = preprocess(image, pre["resize"], pre["crop"], pre["mean"], pre["std"])
    f.set_data_from_numpy(x[None].astype(np.float32), binary_data=False)
    from_tensor = infer(f, "1")
    # The client's defaults: inputs as binary tensor data after the JSON (BYTES items raw, not
    # base64), and outputs, when named, asked for in binary too.
    b = v2.InferInput("input", [1], "BYTES")
    b.set_data_from_numpy(np.array([raw], dtype=object))
    f = v2.InferInput("input", [1, 3, size, size], "FP32")
    f.set_data_from_numpy(x[None].astype(np.float32))
    named = [v2.InferRequestedOutput("probabilities")]
    binary_out = c.infer(model, [b], outputs=named)
    params = binary_out.get_output("probabilities").get("parameters", {})
    assert params.get("binary_data_size") == 4 * len(classes), binary_out.get_response()
    assert np.array_equal(binary_out.as_numpy("probabilities"), from_bytes)
    for binary in [c.infer(model, [b]), c.infer(model, [f], model_version="1", outputs=named)]:
        got = binary.as_numpy("probabilities")
        assert got is not None and np.abs(got - from_bytes).max() < 2e-2, got
    # Triton's classification extension (the client's class_count): "score:index:label".
    top2 = c.infer(model, [b], outputs=[v2.InferRequestedOutput("probabilities", class_count=2)])
    first = top2.as_numpy("probabilities")[0][0].decode().split(":")
    assert top2.as_numpy("probabilities").shape == (1, 2), top2.get_response()
    assert int(first[1]) == int(from_bytes[0].argmax()) and first[2] == classes[int(first[1])], first
    wrong = v2.InferInput("images", [1], "BYTES")
    wrong.set_data_from_numpy(np.array([raw], dtype=object))
    try:
        c.infer(model, [wrong])
        raise AssertionError("an input the model does not have was taken")
    except v2.InferenceServerException as e:
        assert "this model has" in str(e), e
    again = c.infer(model, [b], request_id="graft-check")
    assert np.array_equal(again.as_numpy("probabilities"), from_bytes)
    assert again.get_response()["id"] == "graft-check", again.get_response()
    assert from_bytes.shape == (1, len(classes)), from_bytes.shape
    gap = float(np.abs(from_bytes - from_tensor).max())
    top = int(from_bytes[0].argmax())
    print(f"server {server['name']} {server['version']}; model {meta['name']} ready; "
          f"top class {classes[top]!r} p={from_bytes[0, top]:.4f}; BYTES vs FP32 max gap {gap:.2e}")
    # graft decodes with its own JPEG decoder and resize, this script with PIL's: close, not equal.
    assert gap < 2e-2 and int(from_tensor[0].argmax()) == top, gap


if __name__ == "__main__":
    main(*sys.argv[1:4])
