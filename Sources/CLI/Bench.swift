import ArgumentParser
import CBLAS
import Foundation
import Jobs
import Runtime

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure scoring speed: embeddings/s and GFLOP/s per batch size, next to this machine's sgemm rate.",
        discussion: "Inputs are random unit vectors, or the rows of --input. Scoring with and without the input check alternates in groups of calls about 50 µs long; figures are medians over the groups. Figures go to stdout; nothing is written.")

    @Argument(help: "Models to measure (native or upstream files).")
    var models: [String]

    @Option(help: "Batch sizes, comma-separated.")
    var batchSizes: String = "1,64,4096"

    @Option(help: "Seconds to spend per measurement.")
    var seconds: Double = 1

    @Option(help: "Element type of the random input: float16, float32 or float64.")
    var inputType: String = "float32"

    @Option(help: "MiB of input to cycle through, so that batches come from memory rather than cache, as when streaming a file (default: one batch, reused).")
    var workingSetMib: Int = 0

    @Option(help: ArgumentHelp("Rows from this .npy file instead of random ones, read batch after batch as `score` reads them (memory-mapped, released behind): the figures `score` sees.", valueName: "embeddings.npy"))
    var input: String?

    @Option(help: "Threads per batch (default: every core).")
    var threads: Int?

    @OptionGroup var limitOptions: LimitOptions

    var sizes: [Int] { batchSizes.split(separator: ",").compactMap { Int($0) } }

    func validate() throws {
        guard !sizes.isEmpty, sizes.allSatisfy({ $0 > 0 && $0 <= 1 << 20 }) else {
            throw ValidationError("--batch-sizes takes positive integers up to 1048576, comma-separated")
        }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        guard EmbeddingElementType(rawValue: inputType) != nil else { throw ValidationError("--input-type must be float16, float32 or float64") }
        guard (0...4096).contains(workingSetMib) else { throw ValidationError("--working-set-mib must be in 0...4096") }
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be in 1...1024") }
        if input != nil, inputType != "float32" || workingSetMib != 0 {
            throw ValidationError("--input takes its rows and their type from the file; it goes without --input-type and --working-set-mib")
        }
    }

    func run() throws {
        try ExitStatus.run {
            let cores = ProcessInfo.processInfo.activeProcessorCount
            // The machine's ceiling: OpenBLAS on every core. Scorers keep it at one thread
            // and split batches themselves (Sources/Runtime/Execution.swift).
            openblas_set_num_threads(Int32(cores))
            let peak = Self.sgemmRate(seconds: seconds)
            openblas_set_num_threads(1)
            print(String(format: "machine: %d cores, sgemm 4096x1024x1024 (OpenBLAS, %d threads): %.1f GFLOP/s", cores, cores, peak))
            print("model                                   batch   emb/s        µs/call    GFLOP/s  %sgemm  check")
            var measured: [(name: String, path: String, batch: Int, rowsPerSecond: Double)] = []
            let embeddings = try input.map { path in try withFile(path) { try NpyArray(contentsOf: path) } }
            for path in models {
                let scorer = try ScorerLoader.open(path, limits: limitOptions.limits, threads: threads)
                for batch in sizes {
                    let source: BenchInput
                    if let embeddings {
                        try withFile(input!) {
                            try InputChecker.checkShape(embeddings, scorer: scorer)
                            guard embeddings.shape[0] >= batch else {
                                throw ClipSafetyError.mismatch("\(embeddings.shape[0]) rows, fewer than the batch size \(batch)")
                            }
                        }
                        source = BenchInput(file: embeddings, rows: batch)
                    } else {
                        source = BenchInput(random: batch, columns: scorer.inputWidth, type: EmbeddingElementType(rawValue: inputType)!,
                                            workingSetBytes: workingSetMib << 20)
                    }
                    let m = try Self.measure(scorer, batch: batch, seconds: seconds, input: source)
                    let gflops = m.rowsPerSecond * Double(scorer.flopsPerRow) / 1e9
                    print(pad(scorer.card.name, 38) + String(format: "  %6d  %11.0f  %9.1f  %8.2f  %5.0f%%  %4.1f%%", batch, m.rowsPerSecond,
                                 m.secondsPerCall * 1e6, gflops, 100 * gflops / peak, 100 * m.checkFraction))
                    measured.append((scorer.card.name, path, batch, m.rowsPerSecond))
                }
            }
            comparePyTorch(measured)
        }
    }

    struct Measurement {
        var rowsPerSecond: Double
        var secondsPerCall: Double
        /// Extra time of scoring with the input check (`scoreMeasuring`) relative to scoring alone.
        var checkFraction: Double
    }

    /// Plain and checked scoring of batches from `input`, alternated.
    static func measure(_ scorer: Scorer, batch: Int, seconds: Double, input: BenchInput) throws -> Measurement {
        let workspace = scorer.makeWorkspace(rows: batch)
        func plainCall() throws { try input.next { _ = try scorer.score($0, workspace: workspace) } }
        func checkedCall() throws { try input.next { _ = try scorer.scoreMeasuring($0, workspace: workspace) } }
        try plainCall()
        // Plain and checked scoring alternate in groups of calls a few tens of µs long, the
        // order flipping every pair, so that both see the same machine (this kind of VM
        // drifts from second to second and by 2x at times); the figures are the medians of
        // the groups, which a burst of another tenant's work moves far less than a mean.
        let probe = try secondsPerCall(seconds: 0.01, plainCall)
        let callsPerGroup = Swift.max(1, Int(50e-6 / probe))
        var plain: [Double] = [], checked: [Double] = []
        let start = DispatchTime.now().uptimeNanoseconds
        while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds || plain.count < 3 {
            let plainFirst = plain.count % 2 == 0
            for checking in plainFirst ? [false, true] : [true, false] {
                let t = try timeGroup(callsPerGroup, checking ? checkedCall : plainCall)
                if checking { checked.append(t) } else { plain.append(t) }
            }
        }
        let plainSeconds = median(plain), checkedSeconds = median(checked)
        return Measurement(rowsPerSecond: Double(batch) / plainSeconds, secondsPerCall: plainSeconds, checkFraction: checkedSeconds / plainSeconds - 1)
    }

    /// Mean seconds per call of `calls` calls of `body`.
    static func timeGroup(_ calls: Int, _ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<calls { try body() }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(calls)
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Mean seconds per call of `body` over at least `seconds` (and 3 calls).
    static func secondsPerCall(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
        var calls = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        while elapsed < seconds || calls < 3 {
            try body()
            calls += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        return elapsed / Double(calls)
    }

    /// GFLOP/s of one large single-precision matrix product, the ceiling for dense heads.
    static func sgemmRate(seconds: Double) -> Double {
        let m = 4096, n = 1024, k = 1024
        let a = [Float](repeating: 0.5, count: m * k)
        let b = [Float](repeating: 0.25, count: n * k)
        var c = [Float](repeating: 0, count: m * n)
        var calls = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        while elapsed < seconds || calls < 2 {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, &c, Int32(n))
            calls += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        return Double(calls) * 2 * Double(m * n * k) / elapsed / 1e9
    }

    /// Runs benchmarks/pytorch_bench.py on the same models when python3 can import torch.
    func comparePyTorch(_ measured: [(name: String, path: String, batch: Int, rowsPerSecond: Double)]) {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("benchmarks/pytorch_bench.py").path
        guard Self.python(["-c", "import torch"]) != nil else {
            print("PyTorch: skipped (python3 cannot import torch here)")
            return
        }
        guard FileManager.default.fileExists(atPath: script) else {
            print("PyTorch: skipped (\(script) is not here; run bench from a source checkout)")
            return
        }
        print("PyTorch (same graph, torch CPU):")
        for path in Set(measured.map(\.path)).sorted() {
            guard let out = Self.python([script, path, "--batch-sizes", batchSizes, "--seconds", String(seconds)]) else {
                print("  \(path): the PyTorch run failed")
                continue
            }
            for line in out.split(separator: "\n") {
                let f = line.split(separator: " ")
                guard f.count == 4, let batch = Int(f[1]), let rate = Double(f[2]) else { continue }
                let ours = measured.first { $0.path == path && $0.batch == batch }
                print("  " + pad(ours?.name ?? path, 36) + String(format: "  %6d  %11.0f emb/s  %8.1f µs/call  clipsafety/PyTorch %.2fx", batch, rate, Double(f[3]) ?? 0, (ours?.rowsPerSecond ?? 0) / rate))
            }
        }
    }

    /// Output of `python3 ARGS`, or nil when it fails.
    static func python(_ arguments: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }
}

/// `text` cut or padded with spaces to `width` characters.
func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
}
