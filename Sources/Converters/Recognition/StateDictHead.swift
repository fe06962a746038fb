import Foundation
import Runtime

/// Heads given as a bag of named weights (a state dict, any file's tensors): upstream's heads
/// recognised from their key names and shapes, or any head whose forward pass `--arch` spells
/// out.
/// - the B/32 and L/14 ports: `norm.mean`, `norm.variance`, `linear_1…N.{weight,bias}`;
///   normalisation `sqrt(var) + 1e-10`, ReLU between the Linears, sigmoid output;
/// - `H14_NSFW_Detector`: `layers.{0,3,6,9,12,15,16}.{weight,bias}`, ReLU after each Linear
///   except the last two, raw output.
enum StateDictHead {
    /// The heads recognised without `--arch`.
    enum Known: String {
        case port = "upstream PyTorch port"
        case h14 = "H14_NSFW_Detector"
    }

    /// A known head these tensors form, or nil when the keys match none. Throws when the keys
    /// match but the shapes do not chain.
    static func recognise(_ d: FileDescription) throws -> RecognisedHead? {
        let names = Set(d.tensors.map(\.name))
        guard let (known, spec) = knownSpec(names) else { return nil }
        return try build(spec, from: d, known: known)
    }

    static func knownSpec(_ names: Set<String>) -> (Known, ArchSpec)? {
        let linearCount = names.filter { $0.hasPrefix("linear_") }.count / 2
        var port: Set<String> = ["norm.mean", "norm.variance"]
        for i in stride(from: 1, through: linearCount, by: 1) { port.formUnion(["linear_\(i).weight", "linear_\(i).bias"]) }
        if linearCount >= 1, names == port {
            var steps: [ArchStep] = [.normalize(prefix: "norm", epsilon: ArchSpec.portEpsilon)]
            for i in 1...linearCount {
                if i > 1 { steps.append(.relu) }
                steps.append(.linear(prefix: "linear_\(i)"))
            }
            steps.append(.sigmoid)
            return (.port, ArchSpec(steps: steps))
        }
        // Linear+ReLU+Dropout ×5 (indices 0…14), then Linear 15, Linear 16.
        let h14Layers = [0, 3, 6, 9, 12, 15, 16]
        if names == Set(h14Layers.flatMap { ["layers.\($0).weight", "layers.\($0).bias"] }) {
            var steps: [ArchStep] = []
            for (i, layer) in h14Layers.enumerated() {
                steps.append(.linear(prefix: "layers.\(layer)"))
                if i < h14Layers.count - 2 { steps.append(.relu) }
            }
            return (.h14, ArchSpec(steps: steps))
        }
        return nil
    }

    /// The error for tensors no known head matches: what they hold, and the spec of linear
    /// steps they form when they form one (otherwise that they are no chain of linears).
    static func unknownHead(_ d: FileDescription) -> ClipSafetyError {
        let shown = d.tensors.prefix(24).map { "\($0.name) \($0.shape)" }.joined(separator: ", ")
        let more = d.tensors.count > 24 ? ", … (\(d.tensors.count) tensors)" : ""
        let known = "state dict is not a head clipsafety recognises (upstream B/32 or L/14 port, H14_NSFW_Detector); it holds: \(shown)\(more)."
        guard let spec = LinearChain.suggestedSpec(d) else {
            return .unsupported("\(known) Its floating-point tensors are not a chain of linear layers (PREFIX.weight [out, in], PREFIX.bias [out], widths chaining), the only heads --arch can describe; `clipsafety inspect` lists what it holds")
        }
        return .unsupported("\(known) They form a chain of linear layers: give its forward pass with --arch, e.g. --arch '\(spec.text)' with relu/sigmoid steps where the model has them (activations cannot be seen in weights; docs/ARCH-SPEC.md)")
    }

    // MARK: - Spec → graph

    /// The graph of `spec` over the description's tensors. Checks presence, dtypes, shape
    /// chaining and that every floating-point tensor is used.
    static func build(_ spec: ArchSpec, from d: FileDescription, known: Known? = nil) throws -> RecognisedHead {
        guard !spec.steps.isEmpty else { throw ClipSafetyError.usage("--arch has no steps") }
        var builder = SpecBuilder(description: d)
        for (i, step) in spec.steps.enumerated() { try builder.add(step, index: i) }
        guard let output = builder.width, let input = builder.input else {
            throw ClipSafetyError.mismatch("architecture names no tensor, so the input width is unknown")
        }
        let unused = LinearChain.tensorsToUse(spec, in: d).filter { !builder.used.contains($0.name) }.map(\.name)
        guard unused.isEmpty else {
            throw ClipSafetyError.mismatch("architecture leaves tensors unused: \(unused.joined(separator: ", ")); every weight must take part (docs/ARCH-SPEC.md)")
        }
        let how = known.map { "head recognised from its keys and shapes: \($0.rawValue)" } ?? "architecture given with --arch"
        var notes = [how, "architecture: " + spec.text]
        let outside = d.tensors.filter(\.isFloatingPoint).count - LinearChain.tensorsToUse(spec, in: d).count
        if outside > 0, let top = spec.prefixes.first.map(LinearChain.topLevel) {
            notes.append("a training checkpoint: \(outside) floating-point tensors outside '\(top)' (optimizer state and the like) are not part of the head")
        }
        return RecognisedHead(graph: builder.graph, tensors: builder.tensors, inputWidth: input, outputWidth: output,
                              layers: layers(spec: spec, known: known), notes: notes)
    }

    /// Adds one spec step at a time, tracking the width and the tensors used.
    struct SpecBuilder {
        let description: FileDescription
        var graph: [GraphOp] = []
        var tensors: [Tensor] = []
        var used: Set<String> = []
        var width: Int?
        var input: Int?

        init(description: FileDescription) { self.description = description }

        mutating func take(_ name: String, step: Int) throws -> Tensor {
            guard let t = description.tensor(name) else {
                throw ClipSafetyError.mismatch("architecture step \(step + 1) needs tensor '\(name)', which the file does not hold")
            }
            guard t.isFloatingPoint else {
                throw ClipSafetyError.mismatch("tensor '\(name)' is \(t.dtype); step \(step + 1) needs floating point")
            }
            let tensor = try t.read()
            if used.insert(name).inserted { tensors.append(tensor) }
            return tensor
        }

        mutating func add(_ step: ArchStep, index i: Int) throws {
            switch step {
            case .normalize(let p, let eps): try addNormalize(p, epsilon: eps, index: i)
            case .linear(let p): try addLinear(p, index: i)
            case .relu: graph.append(.relu)
            case .sigmoid: graph.append(.sigmoid)
            }
        }

        mutating func addNormalize(_ p: String, epsilon: Double, index i: Int) throws {
            let mean = try take(ArchSpec.name(p, "mean"), step: i)
            let variance = try take(ArchSpec.name(p, "variance"), step: i)
            let d = mean.elementCount
            guard d > 0, variance.elementCount == d, width == nil || width == d else {
                throw ClipSafetyError.mismatch("architecture step \(i + 1) (normalize:\(p)): mean \(mean.shape) and variance \(variance.shape) do not match the width \(width.map(String.init) ?? "of the input")")
            }
            width = d
            input = input ?? d
            graph.append(.normalize(mean: mean.name, variance: variance.name, denominator: .sqrtVariancePlusEpsilon, epsilon: epsilon))
        }

        mutating func addLinear(_ p: String, index i: Int) throws {
            let w = try take(ArchSpec.name(p, "weight"), step: i)
            guard w.shape.count == 2, w.shape[0] > 0, w.shape[1] > 0, width == nil || width == w.shape[1] else {
                throw ClipSafetyError.mismatch("architecture step \(i + 1) (linear:\(p)): weight has shape \(w.shape); expected [out, \(width.map(String.init) ?? "in")]")
            }
            var biasName: String?
            if description.tensor(ArchSpec.name(p, "bias")) != nil {
                let b = try take(ArchSpec.name(p, "bias"), step: i)
                guard b.shape == [w.shape[0]] else {
                    throw ClipSafetyError.mismatch("architecture step \(i + 1) (linear:\(p)): bias has shape \(b.shape); expected [\(w.shape[0])]")
                }
                biasName = b.name
            }
            input = input ?? w.shape[1]
            graph.append(.dense(weight: w.name, bias: biasName))
            width = w.shape[0]
        }
    }

    /// The modules of `spec` as source layers (one op each; H14_NSFW_Detector's Dropouts,
    /// which hold no weights, at their `nn.Sequential` indices with no op).
    static func layers(spec: ArchSpec, known: Known?) -> [SourceLayer] {
        var layers: [SourceLayer] = []
        var lastLinearIndex: Int?
        for step in spec.steps {
            switch step {
            case .normalize(let p, _): layers.append(SourceLayer(name: p, className: "Normalize", opCount: 1))
            case .linear(let p):
                layers.append(SourceLayer(name: p, className: "Linear", opCount: 1))
                lastLinearIndex = known == .h14 ? Int(p.dropFirst("layers.".count)) : nil
            case .relu:
                if let k = lastLinearIndex {
                    layers.append(SourceLayer(name: "layers.\(k + 1)", className: "ReLU", opCount: 1))
                    layers.append(SourceLayer(name: "layers.\(k + 2)", className: "Dropout", opCount: 0,
                                              notes: ["p 0.2 in H14_NSFW_Detector's code, not stored in the file"]))
                } else {
                    layers.append(SourceLayer(name: "", className: "ReLU", opCount: 1))
                }
            case .sigmoid: layers.append(SourceLayer(name: "", className: "Sigmoid", opCount: 1))
            }
        }
        return layers
    }
}
