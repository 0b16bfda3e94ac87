"""A model's arrays on a device for the length of a with-block: the weights and a workspace (and, for a fit, the
optimizer's slots and the data) put where the device's kernels run, as the bundles they take; at the end of a
fit's block the weights and optimizer slots are fetched back into the host arrays, so the host copy is whole
again whatever ended the block (the end of training, Ctrl-C, an error)."""
from .bundles import WORKSPACE_ARRAYS, Data, Optimizer, Weights
from .plan import net, workspace


class Session:
    """Built by Device.session. `optimizer` is None (evaluate, predict) or (code, hyperparameters as a float64
    array, [slot1, slot2] host arrays, the schedule vector); `config` (config.Config) is the model's configuration.
    Inside the block: .net, .weights, .ws and .opt are the bundles and .kernels the configuration's compiled entry
    points (train_epoch, evaluate, predict); data(...) puts arrays on the device; set_hyperparameters(hp) is the
    one channel for optimizer hyperparameters changed mid-fit; pull() and push() move the weights mid-block
    (callbacks that read or set them)."""

    def __init__(self, device, plan, config, theta, state, capacity, n_targets, optimizer=None):
        self.device, self.plan, self.config = device, plan, config
        self.host = Weights(theta, state)
        self.capacity, self.n_targets, self.optimizer = capacity, n_targets, optimizer

    def __enter__(self):
        self.kernels = self.device.engine.kernels(self.config)
        put = self.device.put
        self.net = net(self.plan)
        self.weights = Weights(put(self.host.theta), put(self.host.state))
        ws = workspace(self.plan, self.capacity, self.n_targets)
        self.ws = ws._replace(**{name: put(getattr(ws, name)) for name in WORKSPACE_ARRAYS})
        self.opt = None
        if self.optimizer is not None:
            code, hp, slots, schedule = self.optimizer
            self.opt = Optimizer(code, hp, put(slots[0]), put(slots[1]), schedule)
        return self

    def data(self, X, Y, W, Xv=None, Yv=None, Wv=None):
        """The training (and validation) arrays and row weights as a Data bundle on the device; no validation: zero
        rows."""
        Xv, Yv, Wv = (X[:0], Y[:0], W[:0]) if Xv is None else (Xv, Yv, Wv)
        return Data(*(self.device.put(a) for a in (X, Y, W, Xv, Yv, Wv)))

    def put(self, array):
        return self.device.put(array)

    def set_hyperparameters(self, hp):
        """The optimizer's hyperparameters [lr, weight_decay, its own] (float64, host) for the next epoch: every
        value a callback may have changed reaches the kernels (the vector stays on the host on both targets)."""
        self.opt.hp[:] = hp

    def pull(self):
        """The device's weights (and optimizer slots) into the host arrays."""
        fetch = self.device.fetch
        fetch(self.weights.theta, self.host.theta)
        fetch(self.weights.state, self.host.state)
        if self.opt is not None:
            fetch(self.opt.slot1, self.optimizer[2][0])
            fetch(self.opt.slot2, self.optimizer[2][1])

    def push(self):
        """The host weights onto the device (after set_weights during a fit)."""
        self.device.send(self.host.theta, self.weights.theta)
        self.device.send(self.host.state, self.weights.state)

    def __exit__(self, *exc):
        if self.opt is not None:  # inference changes nothing on the device
            self.pull()
        return False
