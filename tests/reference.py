"""Independent numpy implementations of each cell's equations, written from the papers."""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def linear(x):
    return x


# Which parts each LSTM variant has, read off Greff et al. 2017 Table 1 / H&S 1997 (not off
# lstm_keras.variants, so that a mistake there shows up here).
LSTM_TABLE = {
    #          gates present   forget       peepholes  FGR    g                          h
    "keras": ("ifo", "learned", False, False, np.tanh, np.tanh),
    "vanilla": ("ifo", "learned", True, False, np.tanh, np.tanh),
    "NIG": ("fo", "learned", True, False, np.tanh, np.tanh),
    "NFG": ("io", "one", True, False, np.tanh, np.tanh),
    "NOG": ("if", "learned", True, False, np.tanh, np.tanh),
    "NIAF": ("ifo", "learned", True, False, linear, np.tanh),
    "NOAF": ("ifo", "learned", True, False, np.tanh, linear),
    "NP": ("ifo", "learned", False, False, np.tanh, np.tanh),
    "CIFG": ("io", "coupled", True, False, np.tanh, np.tanh),
    "FGR": ("ifo", "learned", True, True, np.tanh, np.tanh),
    "lstm1997": ("io", "one", False, False, lambda x: 4 * sigmoid(x) - 2, lambda x: 2 * sigmoid(x) - 1),
}


def lstm_step(variant, weights, x, h, c, gates_prev=None):
    """weights: dict of per-gate matrices W_k, R_k, b_k (k in i, f, c, o), p_k, R_gates."""
    present, forget, peep, fgr, g_act, h_act = LSTM_TABLE[variant]
    W, R, b = weights["W"], weights["R"], weights["b"]
    p = weights.get("p", {})
    learned = [k for k in "ifo" if k in present]

    def pre(k):
        a = x @ W[k] + h @ R[k] + b[k]
        if fgr and k != "c":  # FGR connects gates to gates; the block input is untouched
            a = a + gates_prev @ weights["R_gates"][k]
        return a

    i = sigmoid(pre("i") + (p["i"] * c if peep else 0)) if "i" in present else np.ones_like(c)
    if forget == "learned":
        f = sigmoid(pre("f") + (p["f"] * c if peep else 0))
    elif forget == "coupled":
        f = 1.0 - i
    else:
        f = np.ones_like(c)
    g = g_act(pre("c"))
    c_new = f * c + i * g
    o = sigmoid(pre("o") + (p["o"] * c_new if peep else 0)) if "o" in present else np.ones_like(c)
    h_new = o * h_act(c_new)
    gates = {"i": i, "f": f, "g": g, "o": o}
    return h_new, c_new, np.concatenate([gates[k] for k in learned], axis=-1), gates


def gru_step(variant, w, x, h):
    """w: dict of per-gate W_k, R_k, b_k (and rb_k, recurrent biases, for reset-after forms)."""
    W, R, b = w["W"], w["R"], w["b"]
    rb = w.get("rb", {})
    if variant == "keras":  # Keras reset_after=True
        z = sigmoid(x @ W["z"] + b["z"] + h @ R["z"] + rb["z"])
        r = sigmoid(x @ W["r"] + b["r"] + h @ R["r"] + rb["r"])
        hh = np.tanh(x @ W["h"] + b["h"] + r * (h @ R["h"] + rb["h"]))
        return z * h + (1 - z) * hh
    if variant == "cho2014":
        z = sigmoid(x @ W["z"] + h @ R["z"] + b["z"])
        r = sigmoid(x @ W["r"] + h @ R["r"] + b["r"])
        hh = np.tanh(x @ W["h"] + (r * h) @ R["h"] + b["h"])
        return z * h + (1 - z) * hh
    if variant == "NRG":
        z = sigmoid(x @ W["z"] + b["z"] + h @ R["z"] + rb["z"])
        hh = np.tanh(x @ W["h"] + b["h"] + h @ R["h"] + rb["h"])
        return z * h + (1 - z) * hh
    if variant == "NUG":
        r = sigmoid(x @ W["r"] + b["r"] + h @ R["r"] + rb["r"])
        return np.tanh(x @ W["h"] + b["h"] + r * (h @ R["h"] + rb["h"]))
    # Jozefowicz et al. 2015, section 3 (their z writes the candidate).
    if variant == "MUT1":
        z = sigmoid(x @ W["z"] + b["z"])
        r = sigmoid(x @ W["r"] + h @ R["r"] + b["r"])
        return np.tanh((r * h) @ R["h"] + np.tanh(x) + b["h"]) * z + h * (1 - z)
    if variant == "MUT2":
        z = sigmoid(x @ W["z"] + h @ R["z"] + b["z"])
        r = sigmoid(x + h @ R["r"] + b["r"])
        return np.tanh((r * h) @ R["h"] + x @ W["h"] + b["h"]) * z + h * (1 - z)
    if variant == "MUT3":
        z = sigmoid(x @ W["z"] + np.tanh(h) @ R["z"] + b["z"])
        r = sigmoid(x @ W["r"] + h @ R["r"] + b["r"])
        return np.tanh((r * h) @ R["h"] + x @ W["h"] + b["h"]) * z + h * (1 - z)
    raise KeyError(variant)


# Which per-gate blocks each GRU variant's kernel, recurrent kernel and bias hold, in order.
GRU_LAYOUT = {
    #          kernel cols  recurrent cols  bias slots  reset_after
    "keras": ("zrh", "zrh", "zrh", True),
    "cho2014": ("zrh", "zrh", "zrh", False),
    "NRG": ("zh", "zh", "zh", True),
    "NUG": ("rh", "rh", "rh", True),
    "MUT1": ("zr", "rh", "zrh", False),
    "MUT2": ("zh", "zrh", "zrh", False),
    "MUT3": ("zrh", "zrh", "zrh", False),
}
