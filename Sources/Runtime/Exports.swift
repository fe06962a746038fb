// Apps that depend on the runtime alone see the core's error type, limits and atomic files
// without naming a second module.
@_exported import Core
