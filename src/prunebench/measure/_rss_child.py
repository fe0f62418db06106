"""Child process for :func:`prunebench.measure.memory.peak_rss_child`."""
import json
import resource
import sys

import torch


def main(argv):
    name, batch, threads, seed = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    torch.set_num_threads(threads)
    from prunebench import zoo

    spec = zoo.get_spec(name)
    model, _ = zoo.load(name, trained=spec.trained, seed=seed)
    with torch.no_grad():
        model(spec.example_input(batch))
    print(json.dumps({"peak_rss_bytes": peak_rss()}))


def peak_rss() -> int:
    """High-water RSS of this process image. VmHWM is reset by execve; ru_maxrss is not (it
    keeps the parent's RSS at fork time), so ru_maxrss is only the fallback."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    main(sys.argv[1:])
