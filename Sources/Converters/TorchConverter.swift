import Foundation
import Runtime

/// One step of a head's forward pass over state-dict tensors: what `--arch` spells out and
/// what recognising a known head produces.
public enum ArchStep: Equatable, Sendable {
    /// `(x − <prefix>.mean) / (sqrt(<prefix>.variance) + epsilon)`, upstream's PyTorch port.
    case normalize(prefix: String, epsilon: Double)
    /// `x · <prefix>.weightᵀ + <prefix>.bias` (the bias only when the state dict has it).
    case linear(prefix: String)
    case relu
    case sigmoid
}

/// An architecture spec: the steps a state dict's tensors are run through.
///
/// Syntax (docs/ARCH-SPEC.md): steps separated by commas, white space around them ignored.
///
///     spec  = step *( "," step )
///     step  = "linear:" PREFIX          ; PREFIX.weight [out, in], optional PREFIX.bias [out]
///           / "normalize:" PREFIX [ ":" EPSILON ]
///                                      ; PREFIX.mean, PREFIX.variance; sqrt(var) + EPSILON,
///                                      ; EPSILON defaults to 1e-10 (upstream's port)
///           / "relu" / "sigmoid"
///
/// Example, upstream's B/32 port: `normalize:norm,linear:linear_1,relu,linear:linear_2,relu,linear:linear_3,sigmoid`.
/// Every floating-point tensor of the state dict must be used by some step, so that no weight
/// is silently dropped.
public struct ArchSpec: Equatable, Sendable {
    public var steps: [ArchStep]

    public static let portEpsilon = 1e-10

    public init(steps: [ArchStep]) { self.steps = steps }

    /// Parses the `--arch` text; errors name the step and say what is accepted.
    public init(parsing text: String) throws {
        var steps: [ArchStep] = []
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        for (i, raw) in parts.enumerated() {
            let step = raw.trimmingCharacters(in: .whitespaces)
            let fields = step.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            func bad(_ why: String) -> ClipSafetyError {
                .mismatch("--arch step \(i + 1) '\(step)': \(why) (steps: linear:PREFIX, normalize:PREFIX[:EPSILON], relu, sigmoid; see docs/ARCH-SPEC.md)")
            }
            switch fields[0] {
            case "relu", "sigmoid":
                guard fields.count == 1 else { throw bad("takes no argument") }
                steps.append(fields[0] == "relu" ? .relu : .sigmoid)
            case "linear":
                guard fields.count == 2, !fields[1].isEmpty else { throw bad("needs exactly one prefix") }
                steps.append(.linear(prefix: fields[1]))
            case "normalize":
                guard fields.count >= 2, !fields[1].isEmpty else { throw bad("needs a prefix") }
                var eps = Self.portEpsilon
                if fields.count == 3 {
                    guard let e = Double(fields[2]), e.isFinite, e >= 0 else { throw bad("epsilon must be a non-negative number") }
                    eps = e
                }
                steps.append(.normalize(prefix: fields[1], epsilon: eps))
            case "":
                throw bad("is empty")
            default:
                throw bad("unknown step")
            }
        }
        self.steps = steps
    }

    /// The spec text that parses back to these steps.
    public var text: String {
        steps.map { step -> String in
            switch step {
            case .normalize(let p, let e): return e == Self.portEpsilon ? "normalize:\(p)" : "normalize:\(p):\(e)"
            case .linear(let p): return "linear:\(p)"
            case .relu: return "relu"
            case .sigmoid: return "sigmoid"
            }
        }.joined(separator: ",")
    }
}

/// Converts a PyTorch state dict (`.pth`, zip or legacy container) of a CLIP head to a native
/// model.
///
/// A state dict holds weights, not the forward pass, so the architecture comes from one of:
/// `--arch` (always wins), or recognising upstream's heads from key names and shapes:
/// - the B/32 and L/14 ports: `norm.mean`, `norm.variance`, `linear_1…N.{weight,bias}`;
///   normalisation `sqrt(var) + 1e-10`, ReLU between the Linears, sigmoid output;
/// - `H14_NSFW_Detector`: `layers.{0,3,6,9,12,15,16}.{weight,bias}`, ReLU after each Linear
///   except the last two, raw output.
/// Anything else is refused with the keys and shapes found and a spec to start from.
public enum TorchConverter {
    /// The heads recognised without `--arch`.
    public enum KnownHead: String, Sendable {
        case port = "upstream PyTorch port"
        case h14 = "H14_NSFW_Detector"
    }

    public static func convert(bytes: Data, options: ConversionOptions) throws -> NativeModel {
        try convertWithDetails(bytes: bytes, options: options).model
    }

    /// `convert`, plus the modules the architecture reads and how it was found (for `inspect`).
    public static func convertWithDetails(bytes: Data, options: ConversionOptions) throws -> (model: NativeModel, details: SourceDetails) {
        let checkpoint = try TorchCheckpoint(bytes: bytes, limits: options.limits)
        let spec: ArchSpec
        var known: KnownHead?
        if let text = options.arch {
            spec = try ArchSpec(parsing: text)
        } else if let (head, s) = try recognise(checkpoint.tensors) {
            spec = s
            known = head
        } else {
            throw unknownHead(checkpoint.tensors)
        }
        let (graph, tensors, inputWidth, outputWidth) = try build(spec, tensors: checkpoint.tensors)
        var card = try card(bytes: bytes, options: options, known: known, spec: spec,
                            inputWidth: inputWidth, outputWidth: outputWidth)
        options.applyOverrides(to: &card)
        let source = Provenance(originalFile: options.fileName, sha256: sha256Hex(bytes),
                                sourceFormat: checkpoint.container.rawValue)
        let model = NativeModel(card: card, source: source, graph: graph, tensors: tensors)
        return (model, details(spec: spec, known: known, container: checkpoint.container))
    }

    /// The modules of `spec` as source layers (one op each; H14_NSFW_Detector's Dropouts,
    /// which hold no weights, at their `nn.Sequential` indices with no op).
    static func details(spec: ArchSpec, known: KnownHead?, container: TorchCheckpoint.Container) -> SourceDetails {
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
        let how = known.map { "head recognised from its keys and shapes: \($0.rawValue)" } ?? "architecture given with --arch"
        return SourceDetails(layers: layers, notes: [
            container == .zip ? "torch zip container (torch.save since 1.6)" : "torch legacy container (before 1.6)",
            how, "architecture: " + spec.text,
        ])
    }

    // MARK: - Recognition

    /// The known head these tensors are, with its spec; nil when the keys match none.
    /// Throws when the keys match but the shapes do not chain.
    static func recognise(_ tensors: [Tensor]) throws -> (KnownHead, ArchSpec)? {
        let names = Set(tensors.map(\.name))
        // Upstream's port: norm.* then linear_1 … linear_N.
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
        // H14_NSFW_Detector: Linear+ReLU+Dropout ×5 (indices 0…14), then Linear 15, Linear 16.
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

    /// The error for a state dict no known head matches: what it holds and how to write a spec.
    static func unknownHead(_ tensors: [Tensor]) -> ClipSafetyError {
        let shown = tensors.prefix(24).map { "\($0.name) \($0.shape)" }.joined(separator: ", ")
        let more = tensors.count > 24 ? ", … (\(tensors.count) tensors)" : ""
        let linears = tensors.filter { $0.name.hasSuffix(".weight") && $0.shape.count == 2 }
            .map { "linear:" + String($0.name.dropLast(".weight".count)) }
        let example = linears.isEmpty ? "linear:fc1,relu,linear:fc2,sigmoid" : linears.joined(separator: ",relu,")
        return .unsupported("state dict is not a head clipsafety recognises (upstream B/32 or L/14 port, H14_NSFW_Detector); it holds: \(shown)\(more). Give its forward pass with --arch, e.g. --arch '\(example)' (steps: linear:PREFIX, normalize:PREFIX[:EPSILON], relu, sigmoid; docs/ARCH-SPEC.md)")
    }

    // MARK: - Spec → graph

    /// The graph of `spec` over `tensors`, the tensors it uses (state-dict names kept), and the
    /// input and output widths. Checks presence, dtypes, shape chaining and that every
    /// floating-point tensor is used.
    static func build(_ spec: ArchSpec, tensors: [Tensor]) throws -> (graph: [GraphOp], tensors: [Tensor], input: Int, output: Int) {
        guard !spec.steps.isEmpty else { throw ClipSafetyError.mismatch("architecture has no steps") }
        var byName: [String: Tensor] = [:]
        for t in tensors { byName[t.name] = t }
        var used: [String] = []
        func take(_ name: String, step: Int) throws -> Tensor {
            guard let t = byName[name] else {
                throw ClipSafetyError.mismatch("architecture step \(step + 1) needs tensor '\(name)', which the state dict does not hold")
            }
            guard t.dtype.isFloatingPoint else {
                throw ClipSafetyError.mismatch("tensor '\(name)' is \(t.dtype.rawValue); step \(step + 1) needs floating point")
            }
            if !used.contains(name) { used.append(name) }
            return t
        }
        var graph: [GraphOp] = []
        var width: Int?
        var input: Int?
        for (i, step) in spec.steps.enumerated() {
            switch step {
            case .normalize(let p, let eps):
                let mean = try take(p + ".mean", step: i)
                let variance = try take(p + ".variance", step: i)
                let d = mean.elementCount
                guard d > 0, variance.elementCount == d, width == nil || width == d else {
                    throw ClipSafetyError.mismatch("architecture step \(i + 1) (normalize:\(p)): mean \(mean.shape) and variance \(variance.shape) do not match the width \(width.map(String.init) ?? "of the input")")
                }
                width = d
                input = input ?? d
                graph.append(.normalize(mean: mean.name, variance: variance.name, denominator: .sqrtVariancePlusEpsilon, epsilon: eps))
            case .linear(let p):
                let w = try take(p + ".weight", step: i)
                guard w.shape.count == 2, w.shape[0] > 0, w.shape[1] > 0, width == nil || width == w.shape[1] else {
                    throw ClipSafetyError.mismatch("architecture step \(i + 1) (linear:\(p)): weight has shape \(w.shape); expected [out, \(width.map(String.init) ?? "in")]")
                }
                var biasName: String?
                if byName[p + ".bias"] != nil {
                    let b = try take(p + ".bias", step: i)
                    guard b.shape == [w.shape[0]] else {
                        throw ClipSafetyError.mismatch("architecture step \(i + 1) (linear:\(p)): bias has shape \(b.shape); expected [\(w.shape[0])]")
                    }
                    biasName = b.name
                }
                input = input ?? w.shape[1]
                graph.append(.dense(weight: w.name, bias: biasName))
                width = w.shape[0]
            case .relu:
                graph.append(.relu)
            case .sigmoid:
                graph.append(.sigmoid)
            }
        }
        guard let output = width, let input else {
            throw ClipSafetyError.mismatch("architecture names no tensor, so the input width is unknown")
        }
        let unused = tensors.filter { $0.dtype.isFloatingPoint && !used.contains($0.name) }.map(\.name)
        guard unused.isEmpty else {
            throw ClipSafetyError.mismatch("architecture leaves tensors unused: \(unused.joined(separator: ", ")); every weight must take part (docs/ARCH-SPEC.md)")
        }
        return (graph, used.compactMap { byName[$0] }, input, output)
    }

    // MARK: - Card

    static func card(bytes: Data, options: ConversionOptions, known: KnownHead?, spec: ArchSpec,
                     inputWidth: Int, outputWidth: Int) throws -> ModelCard {
        if let m = Catalog.lookup(bytes: bytes) {
            guard m.embeddingDim == inputWidth else {
                throw ClipSafetyError.mismatch("this is \(m.file) by its checksum, which takes \(m.embeddingDim)-d input, but its head takes \(inputWidth)")
            }
            return m.card
        }
        if let m = Catalog.lookup(fileName: options.fileName), m.embeddingDim == inputWidth,
           m.card.outputColumns.count == outputWidth, m.format.hasPrefix("torch") {
            var c = m.card
            c.name = options.baseName
            return c
        }
        let endsWithSigmoid = spec.steps.last == .sigmoid
        if outputWidth == 1, known != nil || endsWithSigmoid {
            // A recognised upstream NSFW head under another name, or a single sigmoid output.
            let raw = !endsWithSigmoid
            return ModelCard(
                name: options.baseName, task: .binaryNSFW, backbone: "unknown", embeddingDim: inputWidth,
                inputPrecondition: known != nil ? "l2-normalized" : "none", outputKind: raw ? .score : .probability, outputColumns: ["nsfw"],
                outputRange: raw ? nil : [0, 1], labels: ["safe", "nsfw"], positiveLabel: "nsfw",
                threshold: known != nil ? 0.5 : nil,
                thresholdSource: known == .port ? "upstream README" : known == .h14 ? "clip-retrieval" : nil,
                description: known.map { "NSFW head with the architecture of the \($0.rawValue)" })
        }
        var columns = (0..<outputWidth).map { "output_\($0)" }
        if let labels = options.labels, labels.count == outputWidth { columns = labels }
        return ModelCard(
            name: options.baseName, task: .regression, backbone: "unknown", embeddingDim: inputWidth,
            inputPrecondition: "none", outputKind: endsWithSigmoid ? .probability : .score,
            outputColumns: columns, outputRange: endsWithSigmoid ? [0, 1] : nil, labels: [])
    }
}
