#!/usr/bin/env python3
"""Floating-point operations of one network forward, counted from the ONNX graph.

Counts the convolutions (Conv and ConvTranspose, 2 flops per multiply-add, bias ignored), which
are all but a fraction of a percent of a U-Net's arithmetic; normalisation, activations and
additions are left out. Shapes come from ONNX shape inference with a batch of 1.

Usage: flops.py MODEL.onnx   (prints GFLOP per forward)
"""
import sys
from math import prod


def network_flops(path):
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    graph_input = model.graph.input[0]
    for dim in graph_input.type.tensor_type.shape.dim:
        if dim.dim_param:  # the dynamic batch axis
            dim.Clear()
            dim.dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes = {}
    for value in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        shapes[value.name] = dims
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        w = weights[node.input[1]]  # groups are already in its second axis (channels per group)
        if node.op_type == "Conv":
            out = shapes[node.output[0]]  # N, Cout, spatial...
            # w: Cout, Cin/group, k...
            total += 2 * prod(out) * prod(w[1:])
        else:
            inp = shapes[node.input[0]]  # N, Cin, spatial...
            # w: Cin, Cout/group, k...: every input voxel scatters into Cout/group x k outputs
            total += 2 * prod(inp) * prod(w[1:])
    return total


if __name__ == "__main__":
    print(f"{network_flops(sys.argv[1]) / 1e9:.2f} GFLOP per forward")
