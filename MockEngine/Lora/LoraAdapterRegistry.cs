using System.Text.RegularExpressions;
using HybridServing.Contracts.Peft;
using HybridServing.MockEngine.Onnx;
using HybridServing.MockEngine.Performance;

namespace HybridServing.MockEngine.Lora;

/// <summary>An adapter the engine serves: what <c>/v1/models</c> lists.</summary>
/// <remarks><see cref="Weights"/>: the LoRA factors the ONNX backend applies (null on the performance backend).</remarks>
internal sealed record LoadedAdapter(string Name, string Path, string? BaseModelName, int Rank, long SizeBytes, long CreatedUnix, AdapterWeights? Weights = null);

/// <summary>Outcome of a load or unload, already in the engine's HTTP terms.</summary>
internal sealed record LoraOperationResult(int Status, string? ErrorType, string Message, AdapterLoadRecord? Load = null)
{
    public bool Success => ErrorType is null;
}

/// <summary>
/// The adapters the engine has accepted, by name. A load reads and validates the PEFT directory
/// first (config, safetensors header, shapes against the base model when known); the name is
/// registered only if all of it passes, exactly once even under concurrent loads. On the ONNX
/// backend the weights are read too (shapes against the tiny model, every value finite).
/// </summary>
internal sealed partial class LoraAdapterRegistry(MockEngineOptions options, RealTimeEngineDriver driver, TimeProvider time, OnnxBackend? onnx = null)
{
    private readonly object _gate = new();
    private readonly Dictionary<string, LoadedAdapter> _adapters = new(StringComparer.Ordinal);
    private readonly HashSet<string> _loading = new(StringComparer.Ordinal);

    public IReadOnlyList<LoadedAdapter> List()
    {
        lock (_gate) return _adapters.Values.OrderBy(a => a.CreatedUnix).ThenBy(a => a.Name, StringComparer.Ordinal).ToArray();
    }

    public bool TryGet(string name, out LoadedAdapter adapter)
    {
        lock (_gate) return _adapters.TryGetValue(name, out adapter!);
    }

    /// <summary>
    /// Validates and loads an adapter. With <paramref name="takeLoadTime"/> the answer comes after the
    /// modelled disk read (scaled to the wall clock), and only then is the name listed, as in vLLM.
    /// A name is reserved while its load runs, so concurrent loads of one name register it once.
    /// </summary>
    public async Task<LoraOperationResult> LoadAsync(string name, string path, bool loadInplace, string? baseModelName,
        bool takeLoadTime, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(name) || string.IsNullOrEmpty(path))
            return new(400, "InvalidUserInput", "Both 'lora_name' and 'lora_path' must be provided.");
        lock (_gate)
        {
            if ((_adapters.ContainsKey(name) && !loadInplace) || _loading.Contains(name))
                return AlreadyLoaded(name);
            _loading.Add(name);
        }
        try
        {
            if (!options.EnableLora)
                return new(options.LoadFailureStatus, FailureType, "LoRA is not enabled. Use --enable-lora to enable LoRA.");
            var (info, weights, failure) = Validate(name, path);
            if (failure is not null) return failure;

            var started = driver.ModelNow();
            if (takeLoadTime)
            {
                var seconds = driver.Read(m => m.Profile.LocalDiskToHost.SecondsFor(info!.SizeBytes));
                var wait = driver.ToWallClock(TimeSpan.FromSeconds(seconds));
                if (wait > TimeSpan.Zero) await Task.Delay(wait, time, cancellationToken);
            }
            lock (_gate)
            {
                var load = driver.RegisterAdapter(new AdapterSpec(name, info!.Rank, info.SizeBytes), started);
                var created = _adapters.TryGetValue(name, out var previous) ? previous.CreatedUnix : time.GetUtcNow().ToUnixTimeSeconds();
                _adapters[name] = new LoadedAdapter(name, path, baseModelName, info.Rank, info.SizeBytes, created, weights);
                return new(200, null, $"Success: LoRA adapter '{name}' added successfully.", load);
            }
        }
        finally
        {
            lock (_gate) _loading.Remove(name);
        }
    }

    private static LoraOperationResult AlreadyLoaded(string name) => new(400, "InvalidUserInput",
        $"The lora adapter '{name}' has already been loaded. If you want to load the adapter in place, set 'load_inplace' to True.");

    /// <summary>Reads and checks the PEFT directory; never throws for anything the files contain.</summary>
    private (PeftAdapterInfo? Info, AdapterWeights? Weights, LoraOperationResult? Failure) Validate(string name, string path)
    {
        try
        {
            // vLLM checks the config (rank, bias, DoRA) before it touches the weights.
            var configProblem = ReadConfigAlone(path)?.Validate(options.MaxLoraRank);
            if (configProblem is not null) return (null, null, Failure(configProblem));
            var info = PeftAdapter.Read(path);
            var problem = info.Config.Validate(options.MaxLoraRank) ?? CheckShapes(info);
            if (problem is not null) return (null, null, Failure(problem));
            if (onnx is null) return (info, null, null);
            var (weights, weightProblem) = AdapterWeights.Read(info, onnx.Model);
            return weightProblem is null ? (info, weights, null) : (null, null, Failure($"Loading lora {name} failed: {weightProblem}"));
        }
        catch (PeftNotFoundException)
        {
            return (null, null, new(404, "NotFoundError", $"Call to add_lora method failed: Loading lora {name} failed: No adapter found for {path}"));
        }
        catch (PeftFormatException e)
        {
            return (null, null, Failure($"Loading lora {name} failed: {e.Message}"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return (null, null, Failure($"Loading lora {name} failed: {e.Message}"));
        }
    }

    public LoraOperationResult Unload(string? name)
    {
        if (string.IsNullOrEmpty(name))
            return new(400, "InvalidUserInput", "'lora_name' needs to be provided to unload a LoRA adapter.");
        lock (_gate)
        {
            if (!_adapters.Remove(name))
                return new(404, "NotFoundError", $"The lora adapter '{name}' cannot be found.");
            driver.UnregisterAdapter(name);
        }
        return new(200, null, $"Success: LoRA adapter '{name}' removed successfully.");
    }

    private string FailureType => options.LoadFailureStatus == 500 ? "InternalServerError" : "BadRequestError";

    private LoraOperationResult Failure(string message) =>
        new(options.LoadFailureStatus, FailureType, $"Call to add_lora method failed: {message}");

    /// <summary>
    /// When the base model's layer shapes are known, every LoRA tensor must name a real layer and
    /// module and have the shape that module needs (A: [r, in], B: [out, r]), as vLLM's loader
    /// requires before it copies weights into its slots.
    /// </summary>
    private string? CheckShapes(PeftAdapterInfo info)
    {
        BaseModelShape shape;
        // The ONNX backend's model has test/tiny's shapes whatever --model names.
        try { shape = BaseModelShape.For(onnx is null ? options.Model : TinyModel.ShapeName); }
        catch (ArgumentException) { return null; } // unknown base model: nothing to check against
        if (!info.WeightsFile.EndsWith(".safetensors", StringComparison.Ordinal)) return null;

        var header = SafetensorsHeader.ReadFile(info.WeightsFile);
        var unexpected = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var tensor in header.Tensors)
        {
            var m = TensorName().Match(tensor.Name);
            if (!m.Success)
            {
                if (tensor.Name.Contains("lora_", StringComparison.Ordinal)) unexpected.Add(tensor.Name);
                continue; // embeddings / modules_to_save are not LoRA factors
            }
            var layer = int.Parse(m.Groups["layer"].Value, System.Globalization.CultureInfo.InvariantCulture);
            var module = m.Groups["module"].Value;
            if (!shape.Modules.TryGetValue(module, out var dims) || layer >= shape.Layers)
            {
                unexpected.Add(module + (layer >= shape.Layers ? $" (layer {layer})" : ""));
                continue;
            }
            var rank = RankFor(info.Config, tensor.Name);
            long[] expected = m.Groups["factor"].Value == "A" ? [rank, dims.In] : [dims.Out, rank];
            if (tensor.Shape.Length != 2 || tensor.Shape[0] != expected[0] || tensor.Shape[1] != expected[1])
                return $"LoRA weight '{tensor.Name}' has shape [{string.Join(", ", tensor.Shape)}], but base model {shape.Name} with rank {rank} needs [{expected[0]}, {expected[1]}].";
        }
        if (unexpected.Count > 0)
            return $"While loading {info.Directory}, expected target modules in [{string.Join(", ", shape.Modules.Keys)}] but received [{string.Join(", ", unexpected)}]. Please verify that the loaded LoRA module is correct";
        return null;
    }

    /// <summary>The config on its own, when it is there and small enough; PeftAdapter.Read reports everything else.</summary>
    private static PeftConfig? ReadConfigAlone(string path)
    {
        var configPath = System.IO.Path.Combine(path, PeftAdapter.ConfigFileName);
        if (!File.Exists(configPath) || new FileInfo(configPath).Length > PeftAdapter.MaxConfigBytes) return null;
        return PeftConfig.Parse(File.ReadAllBytes(configPath));
    }

    /// <summary>PEFT's rank_pattern overrides r for modules whose name matches a key.</summary>
    private static int RankFor(PeftConfig config, string tensorName)
    {
        if (config.RankPattern is { Count: > 0 } pattern)
        {
            foreach (var (key, value) in pattern)
                if (value > 0 && tensorName.Contains(key, StringComparison.Ordinal)) return value;
        }
        return config.R ?? 0;
    }

    [GeneratedRegex(@"layers\.(?<layer>\d{1,6})\.(?:[a-z_]+\.)?(?<module>[a-z_]+)\.lora_(?<factor>[AB])(?:\.default)?\.weight$")]
    internal static partial Regex TensorName();
}
