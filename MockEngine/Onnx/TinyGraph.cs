using Google.Protobuf;
using HybridServing.MockEngine.Onnx.Schema;

namespace HybridServing.MockEngine.Onnx;

/// <summary>
/// Writes the <see cref="TinyModel"/> as an ONNX graph (opset 17) with the LoRA factors as inputs, in
/// the gathered per-row form (Punica's BGMV): every target module of every layer takes a stack of
/// A factors <c>[slots, in, rank]</c> and of scaled B factors <c>[slots, rank, out]</c>, and
/// <c>row_slot[b]</c> picks each row's slot (slot 0 is all zeros: the base model). A row's output is
/// <c>x·W + (x·A[slot])·B[slot]</c>, so one run mixes the base model and different adapters.
/// </summary>
internal static class TinyGraph
{
    public const string InputIds = "input_ids";
    public const string PositionIds = "positions";
    public const string CausalMask = "causal_mask";
    public const string LastIndex = "last_index";
    public const string RowSlot = "row_slot";
    public const string Logits = "logits";

    public static string LoraA(int layer, string module) => $"lora_a.{layer}.{module}";
    public static string LoraB(int layer, string module) => $"lora_b.{layer}.{module}";
    /// <summary>Hidden states after layer <paramref name="layer"/>, <c>[batch, seq, hidden]</c> (tests compare it with a reference).</summary>
    public static string LayerOutput(int layer) => $"layer_output.{layer}";

    public static byte[] Build(TinyModel model)
    {
        var g = new Builder();
        var graph = g.Graph;
        graph.Name = "hybridserving-tiny-decoder";
        graph.Input.Add(Value(InputIds, TensorProto.Types.DataType.Int64, "batch", "seq"));
        graph.Input.Add(Value(PositionIds, TensorProto.Types.DataType.Int64, "seq"));
        graph.Input.Add(Value(CausalMask, TensorProto.Types.DataType.Float, "seq", "seq"));
        graph.Input.Add(Value(LastIndex, TensorProto.Types.DataType.Int64, "batch", 1));
        graph.Input.Add(Value(RowSlot, TensorProto.Types.DataType.Int64, "batch"));

        g.Initializer("embedding", model.Embedding, TinyModel.Vocab, model.Hidden);
        g.Initializer("position_embedding", model.Positions, model.MaxPositions, model.Hidden);
        g.Int64s("shape.q", 0, 0, model.Heads, TinyModel.HeadDim);
        g.Int64s("shape.kv", 0, 0, model.KvHeads, TinyModel.HeadDim);
        g.Int64s("shape.hidden", 0, 0, model.Hidden);
        g.Initializer("epsilon", [TinyModel.NormEpsilon]);
        g.Initializer("attention_scale", [1f / MathF.Sqrt(TinyModel.HeadDim)]);

        var tokens = g.Node("Gather", ["embedding", InputIds], attributes: [Int("axis", 0)]);
        var positions = g.Node("Gather", ["position_embedding", PositionIds], attributes: [Int("axis", 0)]);
        var x = g.Node("Add", [tokens, positions]);

        for (var l = 0; l < model.Layers; l++)
        {
            var weights = model.LayerWeights[l];
            string Linear(string input, string module)
            {
                var (inDim, outDim) = model.Dims(module);
                var w = g.Initializer($"w.{l}.{module}", weights.Linear[module], inDim, outDim);
                graph.Input.Add(Value(LoraA(l, module), TensorProto.Types.DataType.Float, "slots", inDim, "rank"));
                graph.Input.Add(Value(LoraB(l, module), TensorProto.Types.DataType.Float, "slots", "rank", outDim));
                var dense = g.Node("MatMul", [input, w]);
                var a = g.Node("Gather", [LoraA(l, module), RowSlot], attributes: [Int("axis", 0)]);
                var b = g.Node("Gather", [LoraB(l, module), RowSlot], attributes: [Int("axis", 0)]);
                var shrink = g.Node("MatMul", [input, a]);   // [batch, seq, rank]
                var expand = g.Node("MatMul", [shrink, b]);  // [batch, seq, out]
                return g.Node("Add", [dense, expand]);
            }

            // Attention: causal, grouped-query (the key/value head is shared by the query heads through broadcasting).
            var h = g.RmsNorm(x, g.Initializer($"norm.attention.{l}", weights.AttentionNorm, model.Hidden));
            var q = g.Node("Transpose", [g.Node("Reshape", [Linear(h, "q_proj"), "shape.q"])], attributes: [Ints("perm", 0, 2, 1, 3)]);
            var k = g.Node("Transpose", [g.Node("Reshape", [Linear(h, "k_proj"), "shape.kv"])], attributes: [Ints("perm", 0, 2, 3, 1)]);
            var v = g.Node("Transpose", [g.Node("Reshape", [Linear(h, "v_proj"), "shape.kv"])], attributes: [Ints("perm", 0, 2, 1, 3)]);
            var scores = g.Node("Add", [g.Node("Mul", [g.Node("MatMul", [q, k]), "attention_scale"]), CausalMask]);
            var probabilities = g.Node("Softmax", [scores], attributes: [Int("axis", -1)]);
            var context = g.Node("Transpose", [g.Node("MatMul", [probabilities, v])], attributes: [Ints("perm", 0, 2, 1, 3)]);
            var attention = Linear(g.Node("Reshape", [context, "shape.hidden"]), "o_proj");
            x = g.Node("Add", [x, attention]);

            // SwiGLU MLP.
            var m = g.RmsNorm(x, g.Initializer($"norm.mlp.{l}", weights.MlpNorm, model.Hidden));
            var gate = Linear(m, "gate_proj");
            var silu = g.Node("Mul", [gate, g.Node("Sigmoid", [gate])]);
            var mlp = Linear(g.Node("Mul", [silu, Linear(m, "up_proj")]), "down_proj");
            x = g.Node("Add", [x, mlp], output: LayerOutput(l));
            graph.Output.Add(Value(LayerOutput(l), TensorProto.Types.DataType.Float, "batch", "seq", model.Hidden));
        }

        // Only each row's last real position feeds the LM head (rows are right-padded).
        var last = g.Node("GatherND", [x, LastIndex], attributes: [Int("batch_dims", 1)]);
        var normed = g.RmsNorm(last, g.Initializer("norm.final", model.FinalNorm, model.Hidden));
        g.Node("MatMul", [normed, g.Initializer("lm_head", model.LmHead, model.Hidden, TinyModel.Vocab)], output: Logits);
        graph.Output.Add(Value(Logits, TensorProto.Types.DataType.Float, "batch", TinyModel.Vocab));

        var proto = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "HybridServing.MockEngine",
            ProducerVersion = MockEngineExtensions.VllmVersion,
            Graph = graph,
        };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return proto.ToByteArray();
    }

    private static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.Add(values);
        return attribute;
    }

    /// <summary>A typed graph input/output; each dimension is a size (int) or a symbolic name (string).</summary>
    private static ValueInfoProto Value(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d is string symbol
                ? new TensorShapeProto.Types.Dimension { DimParam = symbol }
                : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d, System.Globalization.CultureInfo.InvariantCulture) });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    private sealed class Builder
    {
        private int _next;
        public GraphProto Graph { get; } = new();

        public string Node(string op, string[] inputs, AttributeProto[]? attributes = null, string? output = null)
        {
            output ??= $"{op.ToLowerInvariant()}_{_next}";
            var node = new NodeProto { OpType = op, Name = $"n{_next++}" };
            node.Input.Add(inputs);
            node.Output.Add(output);
            if (attributes is not null) node.Attribute.Add(attributes);
            Graph.Node.Add(node);
            return output;
        }

        /// <summary>RMSNorm: x / sqrt(mean(x²) + ε) · gain, over the last axis.</summary>
        public string RmsNorm(string x, string gain)
        {
            var meanSquare = Node("ReduceMean", [Node("Mul", [x, x])], attributes: [Ints("axes", -1), Int("keepdims", 1)]);
            var rms = Node("Sqrt", [Node("Add", [meanSquare, "epsilon"])]);
            return Node("Mul", [Node("Div", [x, rms]), gain]);
        }

        public string Initializer(string name, float[] values, params long[] dims)
        {
            var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            tensor.Dims.Add(dims);
            var bytes = new byte[values.Length * sizeof(float)];
            Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("ONNX raw_data is little-endian.");
            tensor.RawData = ByteString.CopyFrom(bytes);
            Graph.Initializer.Add(tensor);
            return name;
        }

        public string Int64s(string name, params long[] values)
        {
            var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
            tensor.Dims.Add(values.Length);
            tensor.Int64Data.Add(values);
            Graph.Initializer.Add(tensor);
            return name;
        }
    }
}
