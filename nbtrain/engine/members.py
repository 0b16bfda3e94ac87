"""Many same-shape models (members) in one compiled call, written once for both targets (issue 29).

Members' arrays are stacked: theta (k, P), state (k, S), optimizer slots (k, P) and hyperparameters (k, H), seeds
(k,). Member j is trained, scored and run by the target's own single-model entry points on row j of each (train_epoch
with Weights(theta[j], state[j]), its Optimizer slice and Loop(seed=seeds[j])), with one shared Workspace, so member j
is the model trained alone with seed seeds[j], bit for bit. The members' average is scored by score_average.

Like cpu.train_epoch, these are plain functions over names the target module defines (train_epoch, evaluate, the
walkers, add_member, to_logits, average_scores, Weights, Optimizer, Loop) and over a configuration's constants;
cpu.py and cuda.py import them and list them in their ENTRY_POINTS, so walkers.specialize compiles (cpu) or binds
(cuda) them per configuration. Nothing here is called directly.
"""
import numpy as np

# Names the target module binds (see the docstring); unbound here.
train_epoch = evaluate = predict = forward = output = add_metrics = add_penalties = metric_sum = rows = None
add_member = to_logits = average_scores = Weights = Optimizer = Loop = Pass = None
HEAD = HEAD_FUSED = LOSS_BCE_LOGITS = T_OUT = None


def train_members(net, weights, opt, ws, objective, data, loop, step0, mean, logs, comm):
    """One epoch of each member in turn (train_epoch's contract, member j's logs in logs[j]); logs (k + 1, 2 width)
    row k receives the ensemble's: the members' mean training sums, then the averaged prediction's validation sums
    (score_average; NaN without validation rows). opt.hp (k, H): member j's hyperparameters; loop.seed (k,) int64.
    Returns the fewest steps a member took: the members after one whose epoch ended early (a stop request, a
    non-finite loss) are not trained, and the ensemble's logs are NaN."""
    k = weights.theta.shape[0]
    width = objective.metric_slots[-1]
    full = (data.X.shape[0] + loop.batch_size - 1) // loop.batch_size
    done = full
    for j in range(k):
        steps = train_epoch(net, Weights(weights.theta[j], weights.state[j]),
                            Optimizer(opt.code, opt.hp[j], opt.slot1[j], opt.slot2[j], opt.schedule), ws, objective,
                            data, Loop(loop.batch_size, loop.shuffle, loop.seed[j], loop.control), step0, logs[j],
                            comm)
        done = min(done, steps)
        if steps < full:
            break
    ensemble = logs[k]
    ensemble[:] = np.nan
    if done < full:
        return done
    ensemble[:width] = 0.0
    for j in range(k):
        ensemble[:width] += logs[j, :width]
    ensemble[:width] /= k
    if data.Xv.shape[0]:
        average_scores(net, weights, ws, objective, data.Xv, data.Yv, data.Wv, mean, ensemble[width:], comm)
    return done


def evaluate_members(net, weights, ws, objective, X, Y, W, mean, logs, comm):
    """evaluate for each member into logs[j] and, into logs[k], the loss and metrics of the members' averaged
    output (score_average) as weighted sums; logs (k + 1, width)."""
    k = weights.theta.shape[0]
    for j in range(k):
        evaluate(net, Weights(weights.theta[j], weights.state[j]), ws, objective, X, Y, W, logs[j], comm)
    average_scores(net, weights, ws, objective, X, Y, W, mean, logs[k], comm)


def predict_members(net, weights, ws, X, out):
    """Inference-mode outputs of each member: out (k, n, n_out), out[j] member j's."""
    for j in range(weights.theta.shape[0]):
        predict(net, Weights(weights.theta[j], weights.state[j]), ws, X, out[j])


def score_average(net, weights, ws, objective, X, Y, W, start, stop, mean, sums, offset):
    """The members' averaged inference output over rows start..stop, ws.capacity at a time, in mean (flat, capacity
    x n_out): sums[offset + metric_slots[j]:] gain metric j's weighted sum of it and sums[offset] the loss's (the
    average is of probabilities: a loss scored on the logits (HEAD_FUSED) reads the average's logits), plus the
    members' mean weight penalty per row."""
    k = weights.theta.shape[0]
    n_out = net.table[net.table.shape[0] - 1, T_OUT]
    for a in range(start, stop, ws.capacity):
        b = min(a + ws.capacity, stop)
        xb, yb, wb = X[a:b], Y[a:b], W[a:b]
        p = rows(mean, 0, ws.capacity, b - a, n_out)
        for j in range(k):
            member = Weights(weights.theta[j], weights.state[j])
            forward(net, member, ws, xb, Pass(False, 0, 0, 0, b - a, None))
            add_member(p, output(net, ws, b - a), j, k)
            add_penalties(net, member, ws.grad, (b - a) / k, 0.0, sums, offset)
        add_metrics(objective, p, yb, wb, sums, offset)
        if HEAD_FUSED:
            to_logits(HEAD == LOSS_BCE_LOGITS, p)
        metric_sum(HEAD, objective.loss_param, p, yb, wb, sums, offset)
