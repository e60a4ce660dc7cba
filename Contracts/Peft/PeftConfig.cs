using System.Text.Json;
using System.Text.Json.Serialization;

namespace HybridServing.Contracts.Peft;

/// <summary>The fields of a PEFT <c>adapter_config.json</c> that engines read.</summary>
public sealed class PeftConfig
{
    [JsonPropertyName("peft_type")] public string? PeftType { get; set; }
    [JsonPropertyName("r")] public int? R { get; set; }
    [JsonPropertyName("lora_alpha")] public double? LoraAlpha { get; set; }
    [JsonPropertyName("target_modules")] public JsonElement? TargetModulesRaw { get; set; }
    [JsonPropertyName("base_model_name_or_path")] public string? BaseModelNameOrPath { get; set; }
    [JsonPropertyName("bias")] public string? Bias { get; set; }
    [JsonPropertyName("use_rslora")] public bool? UseRslora { get; set; }
    [JsonPropertyName("use_dora")] public bool? UseDora { get; set; }
    [JsonPropertyName("rank_pattern")] public Dictionary<string, int>? RankPattern { get; set; }
    [JsonPropertyName("alpha_pattern")] public Dictionary<string, double>? AlphaPattern { get; set; }
    [JsonPropertyName("modules_to_save")] public List<string>? ModulesToSave { get; set; }
    [JsonPropertyName("task_type")] public string? TaskType { get; set; }

    /// <summary><c>target_modules</c> is a list of names or one regex string in PEFT.</summary>
    [JsonIgnore]
    public IReadOnlyList<string> TargetModules => TargetModulesRaw switch
    {
        { ValueKind: JsonValueKind.Array } a => a.EnumerateArray()
            .Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!).ToArray(),
        { ValueKind: JsonValueKind.String } s => [s.GetString()!],
        _ => [],
    };

    /// <summary>The largest rank of any module: <c>max(r, rank_pattern values)</c>, as vLLM checks it.</summary>
    [JsonIgnore]
    public int EffectiveRank => Math.Max(R ?? 0, RankPattern is { Count: > 0 } p ? p.Values.Max() : 0);

    internal static readonly JsonSerializerOptions SerializerOptions = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };

    /// <summary>Parses the JSON text; a malformed document is a <see cref="PeftFormatException"/>.</summary>
    public static PeftConfig Parse(ReadOnlySpan<byte> json)
    {
        // Files written by Windows tools may start with a UTF-8 byte order mark.
        if (json.StartsWith("\uFEFF"u8)) json = json[3..];
        try
        {
            var config = JsonSerializer.Deserialize<PeftConfig>(json, SerializerOptions)
                ?? throw new PeftFormatException("adapter_config.json is empty or null.");
            var missing = new List<string>();
            if (config.R is null) missing.Add("r");
            if (config.LoraAlpha is null) missing.Add("lora_alpha");
            if (config.TargetModulesRaw is null || config.TargetModulesRaw.Value.ValueKind == JsonValueKind.Null) missing.Add("target_modules");
            if (missing.Count > 0)
                throw new PeftFormatException($"Missing required configuration fields: {{{string.Join(", ", missing.Select(m => $"'{m}'"))}}}");
            return config;
        }
        catch (JsonException e)
        {
            throw new PeftFormatException($"adapter_config.json is not valid JSON: {e.Message}");
        }
    }

    /// <summary>
    /// The checks vLLM makes before it accepts an adapter. Returns null when the adapter is
    /// acceptable, else vLLM's message.
    /// </summary>
    public string? Validate(int maxLoraRank)
    {
        if (R is <= 0) return $"LoRA rank {R} must be greater than 0.";
        if (EffectiveRank > maxLoraRank) return $"LoRA rank {EffectiveRank} is greater than max_lora_rank {maxLoraRank}.";
        if (Bias is not null && Bias != "none") return "Adapter bias is not supported.";
        if (UseDora == true) return "vLLM does not yet support DoRA.";
        return null;
    }
}

/// <summary>An adapter's files are malformed or unacceptable. The message is user-facing.</summary>
public class PeftFormatException(string message) : Exception(message);

/// <summary>The path holds no PEFT adapter (no directory, or no <c>adapter_config.json</c>).</summary>
public sealed class PeftNotFoundException(string path) : PeftFormatException($"No adapter found for {path}")
{
    public string AdapterPath { get; } = path;
}
