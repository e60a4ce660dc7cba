using HybridServing.EngineSidecar.Reconciliation;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace HybridServing.EngineSidecar.RolloutFile;

/// <summary>One adapter entry of <c>ensureExist</c> / <c>ensureNotExist</c>; <c>toRemove: true</c> (as in the lora-syncer) asks for it to be unloaded.</summary>
internal sealed record RolloutModel(string Id, string Source, string? BaseModel, bool ToRemove = false);

/// <summary>
/// The lora-syncer's <c>vLLMLoRAConfig</c> file, accepted as is: <c>host</c>, <c>port</c>, <c>name</c>,
/// <c>defaultBaseModel</c>, <c>ensureExist.models[{id, source, base-model, toRemove}]</c>, <c>ensureNotExist.models[...]</c>.
/// A whole ConfigMap manifest whose <c>data</c> holds such a document is accepted too.
/// </summary>
internal sealed record LoraRolloutConfig(
    string? Name,
    string Host,
    int Port,
    string? DefaultBaseModel,
    IReadOnlyList<RolloutModel> EnsureExist,
    IReadOnlyList<RolloutModel> EnsureNotExist,
    IReadOnlyList<string> Warnings)
{
    public const string RootKey = "vLLMLoRAConfig";

    /// <summary>The engine's address; an IPv6 host gets its brackets.</summary>
    public Uri EngineUrl => new UriBuilder(Uri.UriSchemeHttp, Host, Port).Uri;

    /// <summary>Names in both lists: reported and skipped (neither loaded nor unloaded).</summary>
    public IReadOnlyList<string> Conflicts =>
        EnsureExist.Where(m => !m.ToRemove).Select(m => m.Id).Intersect(EnsureNotExist.Select(m => m.Id), StringComparer.Ordinal).ToList();

    /// <summary>Names to unload: ensureNotExist, and entries of either list marked <c>toRemove: true</c>.</summary>
    public IReadOnlyList<string> ToUnload =>
        EnsureNotExist.Select(m => m.Id).Concat(EnsureExist.Where(m => m.ToRemove).Select(m => m.Id)).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>The desired set this file asks for: ensureExist minus conflicts and entries marked toRemove.</summary>
    public IReadOnlyList<DesiredAdapter> Desired()
    {
        var conflicts = Conflicts.ToHashSet(StringComparer.Ordinal);
        return EnsureExist.Where(m => !m.ToRemove && !conflicts.Contains(m.Id))
            .Select(m => new DesiredAdapter(m.Id, m.Source, BaseModel: m.BaseModel ?? DefaultBaseModel))
            .ToList();
    }

    /// <summary>Parses the text. With <paramref name="validate"/>, any problem rejects the file
    /// (<see cref="FormatException"/> listing every problem); without, bad entries are skipped and listed in Warnings.</summary>
    public static LoraRolloutConfig Parse(string yaml, bool validate)
    {
        var stream = Load(yaml, "The file");
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode top)
            throw new FormatException($"The file is empty or not a YAML mapping; it needs a top-level '{RootKey}' key.");

        var root = Child(top, RootKey) as YamlMappingNode ?? FromConfigMap(top)
            ?? throw new FormatException($"The file has no '{RootKey}' mapping (required base key).");

        var problems = new List<string>();
        var warnings = new List<string>();
        var host = Scalar(root, "host") ?? "localhost";
        var port = 8000;
        if (Scalar(root, "port") is { } portText && (!int.TryParse(portText, out port) || port is < 1 or > 65535))
        {
            problems.Add($"'port' must be an integer 1..65535 (got '{portText}').");
            port = 8000;
        }
        if (Uri.CheckHostName(host) == UriHostNameType.Unknown)
        {
            problems.Add($"'host' '{host}' is not a valid host name.");
            host = "localhost";
        }

        var exist = Models(root, "ensureExist", problems);
        var notExist = Models(root, "ensureNotExist", problems);
        foreach (var dup in exist.GroupBy(m => m.Id).Where(g => g.Count() > 1))
            problems.Add($"ensureExist lists '{dup.Key}' {dup.Count()} times.");

        if (problems.Count > 0)
        {
            if (validate) throw new FormatException(string.Join(" ", problems));
            warnings.AddRange(problems);
            exist = exist.GroupBy(m => m.Id).Select(g => g.First()).ToList();
        }
        return new LoraRolloutConfig(Scalar(root, "name"), host, port, Scalar(root, "defaultBaseModel"), exist, notExist, warnings);
    }

    /// <summary>
    /// YAML to nodes; anything YamlDotNet throws is a <see cref="FormatException"/> (besides YamlException it throws
    /// InvalidOperationException and ArgumentException for some malformed streams, which the fuzzer found).
    /// </summary>
    private static YamlStream Load(string text, string what)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (Exception e) when (e is YamlException or InvalidOperationException or ArgumentException)
        {
            throw new FormatException($"{what} is not valid YAML: {e.Message}");
        }
        return stream;
    }

    private static YamlMappingNode? FromConfigMap(YamlMappingNode top)
    {
        if (Scalar(top, "kind") != "ConfigMap" || Child(top, "data") is not YamlMappingNode data) return null;
        foreach (var (_, value) in data.Children)
        {
            if (value is YamlScalarNode { Value: { } text } && text.Contains(RootKey, StringComparison.Ordinal))
            {
                var inner = Load(text, "The ConfigMap's data entry");
                if (inner.Documents.Count > 0 && inner.Documents[0].RootNode is YamlMappingNode m && Child(m, RootKey) is YamlMappingNode r)
                    return r;
            }
        }
        return null;
    }

    private static List<RolloutModel> Models(YamlMappingNode root, string key, List<string> problems)
    {
        var result = new List<RolloutModel>();
        var section = Child(root, key);
        if (section is null) return result;
        if (section is not YamlMappingNode map)
        {
            problems.Add($"'{key}' must be a mapping with a 'models' list.");
            return result;
        }
        var models = Child(map, "models");
        if (models is null)
        {
            problems.Add($"'{key}.models' is required.");
            return result;
        }
        if (models is not YamlSequenceNode list)
        {
            problems.Add($"'{key}.models' must be a list.");
            return result;
        }
        var i = 0;
        foreach (var item in list.Children)
        {
            var where = $"{key}.models[{i++}]";
            if (item is not YamlMappingNode entry)
            {
                problems.Add($"{where} must be a mapping with 'id' and 'source'.");
                continue;
            }
            var id = Scalar(entry, "id");
            var source = Scalar(entry, "source");
            if (string.IsNullOrWhiteSpace(id)) { problems.Add($"{where}.id is required."); continue; }
            if (AdapterNames.Check(id) is { } bad) { problems.Add($"{where}.id: {bad}"); continue; }
            if (string.IsNullOrWhiteSpace(source)) { problems.Add($"{where}.source is required (adapter '{id}')."); continue; }
            var toRemove = false;
            if (Scalar(entry, "toRemove") is { } removeText && !bool.TryParse(removeText, out toRemove))
            {
                problems.Add($"{where}.toRemove must be true or false (got '{removeText}', adapter '{id}').");
                continue;
            }
            result.Add(new RolloutModel(id, source, Scalar(entry, "base-model"), toRemove));
        }
        return result;
    }

    private static YamlNode? Child(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var node) ? node : null;

    private static string? Scalar(YamlMappingNode map, string key) =>
        Child(map, key) is YamlScalarNode { Value: { } v } && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;
}
