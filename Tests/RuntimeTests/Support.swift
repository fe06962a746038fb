import Runtime
import TestSupport

/// Short names for the hand-built models used across these tests.
enum HandBuiltModels {
    static func binary() -> NativeModel { HandBuilt.binaryModel() }
    static func prompts() -> NativeModel { HandBuilt.promptModel() }
}
