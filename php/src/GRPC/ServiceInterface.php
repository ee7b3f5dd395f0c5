<?php

/**
 * Owns the marker interface of gRPC service interfaces (php/bin/generate.py emits interfaces that
 * extend it, each with a NAME constant holding the full service name).
 */

declare(strict_types=1);

namespace RRGrpc\GRPC;

interface ServiceInterface
{
}
