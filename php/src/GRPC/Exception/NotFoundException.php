<?php

/**
 * Owns the NOT_FOUND flavour of GRPCException (also raised for an unknown service or method).
 */

declare(strict_types=1);

namespace RRGrpc\GRPC\Exception;

use RRGrpc\GRPC\StatusCode;

class NotFoundException extends GRPCException
{
    protected const CODE = StatusCode::NOT_FOUND;
}
