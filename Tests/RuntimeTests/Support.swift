import Foundation
import Runtime
import TestSupport

/// Short names for the hand-built models used across these tests.
enum HandBuiltModels {
    static func binary() -> NativeModel { HandBuilt.binaryModel() }
    static func prompts() -> NativeModel { HandBuilt.promptModel() }
}

/// C `printf("%f", value)`: the key rule of `categorical_lookup`, the reference the fast lookup
/// is held to.
func percentF(_ value: Double) -> String {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: 400) { buf in
        let n = withVaList([value]) { vsnprintf(buf.baseAddress!, 400, "%f", $0) }
        return String(decoding: UnsafeRawBufferPointer(start: buf.baseAddress!, count: Int(Swift.min(Swift.max(n, 0), 399))), as: UTF8.self)
    }
}
