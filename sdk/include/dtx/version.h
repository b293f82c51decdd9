// SPDX-License-Identifier: MIT
//
// dtx version. CMake reads these three lines; keep their shape.

#ifndef DTX_VERSION_H
#define DTX_VERSION_H

#define DTX_VERSION_MAJOR 0
#define DTX_VERSION_MINOR 1
#define DTX_VERSION_PATCH 0

// The wire protocol version carried in every Request and Reply.
#define DTX_PROTOCOL_VERSION 1

#endif // DTX_VERSION_H
