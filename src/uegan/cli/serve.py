"""``uegan serve``: a local web page to enhance photos and compare checkpoints.

The page and the server are in :mod:`uegan.apps.serve`. Listens on 127.0.0.1 unless ``--host``
says otherwise (then it warns); Ctrl-C or SIGTERM stops it (exit 130 / 143) and removes its
temporary folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from uegan.apps.serve import ServeConfig, serve
from uegan.apps.serve.config import DEFAULT_HOST, DEFAULT_MAX_UPLOAD_MB, DEFAULT_PORT
from uegan.cli.preflight import check_threads, select_device
from uegan.errors import UserError
from uegan.inference import DEFAULT_MAX_SIDE
from uegan.io.budget import DEFAULT_MAX_PIXELS
from uegan.runtime import DEVICE_CHOICES, configure_threads


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="a local web page to enhance photos and compare checkpoints",
        description="Serve a web page where photos dropped in the browser are enhanced with one "
                    "or more checkpoints, shown before / after, scored against references "
                    "(PSNR, SSIM, CIEDE2000) and downloaded at full resolution, one by one or "
                    "as a zip. The downloads are the files `uegan enhance` writes.")
    parser.add_argument("--checkpoint", "-c", required=True, action="append", type=Path,
                        help="generator checkpoint; repeat it to compare up to 4")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; "
                             f"any other address is reachable by others and gives a warning)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                        help=f"largest file accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB})")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"refuse images with more pixels (decompression bombs; default "
                             f"{DEFAULT_MAX_PIXELS:,})")
    parser.add_argument("--max-side", type=int, default=DEFAULT_MAX_SIDE,
                        help=f"as for uegan enhance (default {DEFAULT_MAX_SIDE})")
    parser.add_argument("--full-res", action="store_true", help="as for uegan enhance")
    parser.add_argument("--device", default="auto",
                        help=f"{DEVICE_CHOICES} (default auto: CUDA, then MPS, then the CPU)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (at least 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_upload_mb <= 0:
        raise UserError(f"--max-upload-mb {args.max_upload_mb:g}: must be positive")
    check_threads(args.threads)
    device = select_device(args.device)
    config = ServeConfig(checkpoints=tuple(args.checkpoint), host=args.host, port=args.port,
                         device=str(device), max_side=args.max_side, full_res=args.full_res,
                         max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                         max_pixels=args.max_pixels).check()
    configure_threads(args.threads)
    serve(config)
    return 0
