import Foundation
import Converters
import Runtime

/// Limits for fuzzing: the defaults, except that archives and tensors stay small enough for
/// many executions per second.
public let fuzzLimits: ReaderLimits = {
    var l = ReaderLimits()
    l.maxUncompressedBytes = 16 << 20
    l.maxTensorElements = 4 << 20
    return l
}()

nonisolated(unsafe) private var target: ((Data) throws -> Void)?

@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// libFuzzer's entry point: runs the target on one input. A ClipSafetyError is the expected
/// way to refuse an input; any other error is a finding (reported as a crash), as are traps
/// and sanitizer reports.
@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? Data() : Data(bytes: data!, count: size)
    do {
        try target!(bytes)
    } catch is ClipSafetyError {
    } catch {
        fatalError("not a ClipSafetyError: \(error)")
    }
    return 0
}

/// Runs libFuzzer's driver (its usual command-line flags) with `body` as the target.
public func runFuzzer(_ body: @escaping (Data) throws -> Void) -> Never {
    target = body
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput))
}
