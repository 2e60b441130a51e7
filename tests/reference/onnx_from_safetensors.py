"""ONNX graphs of radlab's triage network, for the tests of radlab_triage::onnx.

    onnx_from_safetensors.py net WEIGHTS.safetensors OUT.onnx
        The built-in network (crates/radlab-triage/src/model.rs) with the weights of a
        safetensors file: blocks of Conv 3x3 (pads 1, bias) + Relu + MaxPool 2x2, as many as
        the file has conv{i}.weight, then Flatten of the last map and Gemm (head.weight,
        head.bias; a head as wide as the last map's channels reads GlobalAveragePool then
        Flatten instead). Input "views" float [N, C, S, S] with N dynamic; output "logits"
        [N, K].
        --side S (default 64) fixes the input side.

    onnx_from_safetensors.py random OUT.onnx [--channels C] [--side S] [--outputs K]
                             [--blocks B] [--batch N] [--seed SEED]
        The same architecture with seeded random weights (numpy), ending in ReduceMean over
        the two spatial axes instead of GlobalAveragePool; --batch fixes N (0: dynamic),
        --side 0 leaves S dynamic (a model radlab must refuse).

    onnx_from_safetensors.py flat OUT.onnx
        A model whose input is [N, 4096] (rank 2: radlab must refuse it).

Only the onnx package's helper API and numpy: no torch, no onnxruntime.
"""

import argparse
import json
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def read_safetensors(path):
    """The tensors of a safetensors file, as float32 numpy arrays by name."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": None}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = dtypes[info["dtype"]]
        start, end = info["data_offsets"]
        out[name] = (
            np.frombuffer(body[start:end], dtype=dtype)
            .reshape(info["shape"])
            .astype(np.float32)
        )
    return out


def random_weights(channels, outputs, blocks, seed):
    """He-uniform weights, small random biases, for `blocks` blocks of 16, 32, 64, 64...
    channels."""
    rng = np.random.default_rng(seed)
    widths = [channels] + [min(16 << i, 64) for i in range(blocks)]
    out = {}
    for i in range(blocks):
        cin, cout = widths[i], widths[i + 1]
        bound = np.sqrt(6.0 / (cin * 9))
        out[f"conv{i}.weight"] = rng.uniform(-bound, bound, (cout, cin, 3, 3)).astype(
            np.float32
        )
        out[f"conv{i}.bias"] = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
    last = widths[-1]
    bound = np.sqrt(6.0 / last)
    out["head.weight"] = rng.uniform(-bound, bound, (outputs, last)).astype(np.float32)
    out["head.bias"] = rng.uniform(-0.1, 0.1, outputs).astype(np.float32)
    return out


def network(weights, side, batch, reduce_mean):
    """The graph: blocks conv{i} while the weights have them, then the mean and the head."""
    blocks = 0
    while f"conv{blocks}.weight" in weights:
        blocks += 1
    if blocks == 0:
        raise SystemExit("no conv0.weight in the weights")
    channels = weights["conv0.weight"].shape[1]
    outputs = weights["head.weight"].shape[0]
    n = batch if batch > 0 else "N"
    s = side if side > 0 else "S"
    inits = []
    nodes = []
    x = "views"
    for i in range(blocks):
        w, b = f"conv{i}.weight", f"conv{i}.bias"
        inits.append(numpy_helper.from_array(weights[w], w))
        inits.append(numpy_helper.from_array(weights[b], b))
        nodes.append(
            helper.make_node(
                "Conv",
                [x, w, b],
                [f"conv{i}"],
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
                strides=[1, 1],
            )
        )
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"]))
        nodes.append(
            helper.make_node(
                "MaxPool", [f"relu{i}"], [f"pool{i}"], kernel_shape=[2, 2], strides=[2, 2]
            )
        )
        x = f"pool{i}"
    last = weights[f"conv{blocks - 1}.weight"].shape[0]
    if weights["head.weight"].shape[1] != last:
        # The head reads the last map flattened (channel-major), as radlab's network does.
        nodes.append(helper.make_node("Flatten", [x], ["pooled"], axis=1))
    elif reduce_mean:
        nodes.append(
            helper.make_node("ReduceMean", [x], ["pooled"], axes=[2, 3], keepdims=0)
        )
    else:
        nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
        nodes.append(helper.make_node("Flatten", ["gap"], ["pooled"], axis=1))
    for name in ["head.weight", "head.bias"]:
        inits.append(numpy_helper.from_array(weights[name], name))
    nodes.append(
        helper.make_node(
            "Gemm", ["pooled", "head.weight", "head.bias"], ["logits"], transB=1
        )
    )
    graph = helper.make_graph(
        nodes,
        "radlab-triage",
        [helper.make_tensor_value_info("views", TensorProto.FLOAT, [n, channels, s, s])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, outputs])],
        inits,
    )
    return graph


def flat():
    rng = np.random.default_rng(1)
    w = rng.uniform(-0.01, 0.01, (12, 4096)).astype(np.float32)
    b = np.zeros(12, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["views", "w", "b"], ["logits"], transB=1)],
        "flat",
        [helper.make_tensor_value_info("views", TensorProto.FLOAT, ["N", 4096])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 12])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return graph


def save(graph, path):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="radlab tests/reference/onnx_from_safetensors.py",
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    net = sub.add_parser("net")
    net.add_argument("weights")
    net.add_argument("out")
    net.add_argument("--side", type=int, default=64)
    rnd = sub.add_parser("random")
    rnd.add_argument("out")
    rnd.add_argument("--channels", type=int, default=1)
    rnd.add_argument("--side", type=int, default=64)
    rnd.add_argument("--outputs", type=int, default=12)
    rnd.add_argument("--blocks", type=int, default=4)
    rnd.add_argument("--batch", type=int, default=0)
    rnd.add_argument("--seed", type=int, default=1)
    fl = sub.add_parser("flat")
    fl.add_argument("out")
    a = p.parse_args()
    if a.what == "net":
        save(network(read_safetensors(a.weights), a.side, 0, False), a.out)
    elif a.what == "random":
        weights = random_weights(a.channels, a.outputs, a.blocks, a.seed)
        save(network(weights, a.side, a.batch, True), a.out)
    else:
        save(flat(), a.out)


if __name__ == "__main__":
    main()
