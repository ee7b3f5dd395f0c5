<?php

/**
 * Owns the "peer went away" case: the relay reached end-of-file between two frames.
 */

declare(strict_types=1);

namespace RRGrpc\Goridge;

final class RelayClosedException extends RelayException
{
}
