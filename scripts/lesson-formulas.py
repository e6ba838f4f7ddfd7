"""Greedy text from a saved lstm-lyrics model, computed with the lessons' own PyTorch formulas.

A check of fidelity from outside TF.js: it reads a model directory's weights (either impl, any
cell, any number of layers) and runs the d2l lessons' equations on one-hot characters,

  RNN   H = tanh(X W_xh + H W_hh + b_h)
  GRU   Z = sigmoid(X W_xz + H W_hz + b_z)    R = sigmoid(X W_xr + H W_hr + b_r)
        H~ = tanh(X W_xh + (R * H) W_hh + b_h)    H = Z * H + (1 - Z) * H~
  LSTM  I, F, O = sigmoid(X W_x. + H W_h. + b_.)    C~ = tanh(X W_xc + H W_hc + b_c)
        C = F * C + I * C~    H = O * tanh(C)
  out   Y = H W_hq + b_q

then predicts as the lessons' predict_rnn does (the prefix fed one character at a time, then the
most likely character each step). Prints the text, which must equal `lstm-lyrics generate`'s.

Usage: /usr/bin/python3 scripts/lesson-formulas.py MODEL_DIR PREFIX LENGTH
Only for trusted directories you trained yourself: it does not repeat lstm-lyrics' checks.
"""
import json
import os
import sys

import numpy as np
import torch

# Each cell's gates in the fused order both implementations save them in (tf.layers' layout).
FUSED = {'rnn': ['h'], 'gru': ['z', 'r', 'h'], 'lstm': ['i', 'f', 'c', 'o']}


def read_weights(directory, manifest_file, weights_file):
    with open(os.path.join(directory, manifest_file), encoding='utf-8') as f:
        specs = json.load(f)['weightsManifest'][0]['weights']
    data = np.fromfile(os.path.join(directory, weights_file), dtype='<f4')
    weights, at = {}, 0
    for spec in specs:
        n = int(np.prod(spec['shape'])) if spec['shape'] else 1
        weights[spec['name']] = torch.tensor(data[at:at + n].reshape(spec['shape']))
        at += n
    return weights


def layers_of(model, weights):
    """Per layer, a dict of the lesson's names (W_xh, W_hz, b_i, ...) to tensors; then W_hq, b_q."""
    cell, impl, hidden = model['cell'], model['impl'], model['hidden']
    gates = FUSED[cell]
    layers = []
    for l in range(model['layers']):
        if impl == 'scratch':
            prefix = '' if l == 0 else f'layer{l + 1}/'
            layers.append({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix) and '/' not in k[len(prefix):]})
        else:
            name = cell if l == 0 else f'{cell}_{l + 1}'
            parts = [weights[f'{name}/kernel'], weights[f'{name}/recurrent_kernel'], weights[f'{name}/bias']]
            split = [torch.split(p, hidden, dim=-1) for p in parts]
            layer = {}
            for g, (wx, wh, b) in enumerate(zip(*split)):
                layer[f'W_x{gates[g]}'], layer[f'W_h{gates[g]}'], layer[f'b_{gates[g]}'] = wx, wh, b
            layers.append(layer)
    if impl == 'scratch':
        out = weights['W_hq'], weights['b_q']
    else:
        out = weights['output/kernel'], weights['output/bias']
    return layers, out


def step(cell, X, state, p):
    if cell == 'rnn':
        (H,) = state
        H = torch.tanh(X @ p['W_xh'] + H @ p['W_hh'] + p['b_h'])
        return H, (H,)
    if cell == 'gru':
        (H,) = state
        Z = torch.sigmoid(X @ p['W_xz'] + H @ p['W_hz'] + p['b_z'])
        R = torch.sigmoid(X @ p['W_xr'] + H @ p['W_hr'] + p['b_r'])
        H_tilda = torch.tanh(X @ p['W_xh'] + (R * H) @ p['W_hh'] + p['b_h'])
        H = Z * H + (1 - Z) * H_tilda
        return H, (H,)
    H, C = state
    I = torch.sigmoid(X @ p['W_xi'] + H @ p['W_hi'] + p['b_i'])
    F = torch.sigmoid(X @ p['W_xf'] + H @ p['W_hf'] + p['b_f'])
    O = torch.sigmoid(X @ p['W_xo'] + H @ p['W_ho'] + p['b_o'])
    C_tilda = torch.tanh(X @ p['W_xc'] + H @ p['W_hc'] + p['b_c'])
    C = F * C + I * C_tilda
    H = O * C.tanh()
    return H, (H, C)


def main():
    directory, prefix, length = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(os.path.join(directory, 'checkpoint.json'), encoding='utf-8') as f:
        meta = json.load(f)
    model = {'cell': 'lstm', 'layers': 1, **meta['model']}  # saved before the series: one LSTM layer
    files = ('weights.json', 'weights.bin') if model['impl'] == 'scratch' else ('model.json', 'weights.bin')
    layers, (W_hq, b_q) = layers_of(model, read_weights(directory, *files))
    idx_to_char = meta['vocab']
    char_to_idx = {c: i for i, c in enumerate(idx_to_char)}
    V, hidden = len(idx_to_char), model['hidden']
    size = 2 if model['cell'] == 'lstm' else 1
    state = [tuple(torch.zeros(1, hidden) for _ in range(size)) for _ in layers]
    chars = list(prefix)
    output = [char_to_idx[chars[0]]]
    with torch.no_grad():
        for t in range(length + len(chars) - 1):
            X = torch.nn.functional.one_hot(torch.tensor([output[-1]]), V).float()
            for l, p in enumerate(layers):
                X, state[l] = step(model['cell'], X, state[l], p)
            Y = X @ W_hq + b_q
            output.append(char_to_idx[chars[t + 1]] if t < len(chars) - 1 else int(Y.argmax(dim=1).item()))
    print(''.join(idx_to_char[i] for i in output))


if __name__ == '__main__':
    main()
