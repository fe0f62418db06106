"""Child process for :func:`prunebench.measure.memory.peak_rss_child`."""
import json
import sys

import torch

from .memory import peak_rss


def main(argv):
    name, batch, threads, seed = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    torch.set_num_threads(threads)
    from prunebench import zoo

    spec = zoo.get_spec(name)
    model, _ = zoo.load(name, trained=spec.trained, seed=seed)
    with torch.no_grad():
        model(spec.example_input(batch))
    print(json.dumps({"peak_rss_bytes": peak_rss()}))


if __name__ == "__main__":
    main(sys.argv[1:])
