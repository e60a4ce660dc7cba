using System.Text.RegularExpressions;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;

namespace HybridServing.ControlPlane.Sources;

/// <summary>Bytes of a ranged read and the whole object's length.</summary>
internal sealed record RangeRead(byte[] Bytes, long TotalLength);

/// <summary>The two files of one remote adapter, as its source can read them.</summary>
internal interface IAdapterFiles
{
    /// <summary>The whole <c>adapter_config.json</c> (refused above <see cref="PeftAdapter.MaxConfigBytes"/>); null when absent.</summary>
    Task<byte[]?> ReadConfigAsync(CancellationToken cancellationToken);

    /// <summary>Up to <paramref name="length"/> bytes of <c>adapter_model.safetensors</c> from <paramref name="offset"/>; null when absent.</summary>
    Task<RangeRead?> ReadWeightsAsync(long offset, int length, CancellationToken cancellationToken);
}

/// <summary>
/// Reads a remote adapter's facts from <c>adapter_config.json</c> and the safetensors header only: one ranged read
/// for the 8-byte header length, one for the header. The weights themselves are never fetched.
/// </summary>
internal static class RemoteAdapterInspector
{
    /// <summary>Headers of LoRA adapters are kilobytes; the format allows 100 MB, which a hostile source must not make us fetch.</summary>
    public const int MaxRemoteHeaderBytes = 8 * 1024 * 1024;

    /// <summary>The adapter, or why it cannot be used. Source-wide failures (<see cref="SourceException"/>) propagate.</summary>
    public static async Task<(DiscoveredAdapter? Adapter, AdapterFailure? Failure)> InspectAsync(
        string name, string uri, string display, string digest, IAdapterFiles files, CancellationToken cancellationToken)
    {
        try
        {
            var configBytes = await files.ReadConfigAsync(cancellationToken);
            if (configBytes is null)
                return (null, new(name, LoraAdapterReasons.AdapterNotFound, $"no {PeftAdapter.ConfigFileName} at {display}."));
            var config = PeftConfig.Parse(configBytes);
            if (config.Validate(int.MaxValue) is { } rejection)
                return (null, new(name, LoraAdapterReasons.AdapterIncompatible, rejection));

            var first = await files.ReadWeightsAsync(0, 8, cancellationToken);
            if (first is null)
                return (null, new(name, LoraAdapterReasons.AdapterNotFound,
                    $"no {PeftAdapter.SafetensorsFileName} at {display} (sidecars fetch safetensors weights; pickled .bin adapters are not supported from remote sources)."));
            var headerLength = SafetensorsHeader.ReadHeaderLength(first.Bytes, first.TotalLength);
            if (headerLength > MaxRemoteHeaderBytes)
                throw new PeftFormatException($"safetensors header length {headerLength} is above the {MaxRemoteHeaderBytes} bytes a remote LoRA adapter's header may have.");
            var header = await files.ReadWeightsAsync(8, (int)headerLength, cancellationToken)
                         ?? throw new AdapterReadException(LoraAdapterReasons.SourceUnavailable, $"{PeftAdapter.SafetensorsFileName} at {display} disappeared while being read.");
            if (header.TotalLength != first.TotalLength)
                throw new AdapterReadException(LoraAdapterReasons.SourceUnavailable, $"{PeftAdapter.SafetensorsFileName} at {display} changed while being read.");
            if (header.Bytes.Length != headerLength)
                throw new PeftFormatException($"safetensors file is truncated: its header is {headerLength} bytes but only {header.Bytes.Length} could be read.");
            var parsed = SafetensorsHeader.Parse(header.Bytes, first.TotalLength - 8 - headerLength);
            if (parsed.Tensors.Count == 0)
                throw new PeftFormatException($"{PeftAdapter.SafetensorsFileName} holds no tensors.");
            return (new DiscoveredAdapter(name, uri, config.EffectiveRank, config.TargetModules, first.TotalLength, digest, config.BaseModelNameOrPath), null);
        }
        catch (PeftFormatException e)
        {
            return (null, new(name, LoraAdapterReasons.InvalidAdapter, e.Message));
        }
        catch (AdapterReadException e)
        {
            return (null, new(name, e.Reason, e.Message));
        }
    }

    /// <summary>
    /// Inspects every candidate, <paramref name="concurrency"/> at a time, keeping the candidates' order. A
    /// <see cref="SourceException"/> from any of them (the source went away, credentials refused) fails the whole listing.
    /// </summary>
    public static async Task<DiscoveryResult> InspectAllAsync<T>(IReadOnlyList<T> candidates, int concurrency,
        Func<T, CancellationToken, Task<(DiscoveredAdapter?, AdapterFailure?)>> inspect, List<AdapterFailure> failures, CancellationToken cancellationToken)
    {
        var results = new (DiscoveredAdapter?, AdapterFailure?)[candidates.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, candidates.Count),
            new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken },
            async (i, ct) => results[i] = await inspect(candidates[i], ct));
        return new DiscoveryResult([.. results.Where(r => r.Item1 is not null).Select(r => r.Item1!)],
            [.. failures, .. results.Where(r => r.Item2 is not null).Select(r => r.Item2!)]);
    }
}

/// <summary>Which names a source's <c>adapters</c>, <c>pattern</c> and <c>prefix</c> select, shared by every remote source.</summary>
internal sealed class NameFilter
{
    private readonly Regex? _pattern;
    private readonly AdapterSource _source;

    public NameFilter(AdapterSource source)
    {
        _source = source;
        _pattern = source.Pattern is { } p ? Glob.ToRegex(p) : null;
    }

    public IList<string>? Explicit => _source.Adapters is { Count: > 0 } names ? names : null;

    public bool Wanted(string name) => (_pattern is null || _pattern.IsMatch(name))
                                       && (_source.Prefix is null || name.StartsWith(_source.Prefix, StringComparison.Ordinal))
                                       && (Explicit is null || Explicit.Contains(name));

    public static bool IsValidName(string name) => Regex.IsMatch(name, AdapterNames.Pattern);

    /// <summary>
    /// Selects among the adapters found (name → location): wanted names in order, an InvalidAdapter failure for a
    /// wanted name that cannot be a model name, and AdapterNotFound for every explicit name not found.
    /// </summary>
    public List<(string Name, TLocation Location)> Select<TLocation>(IReadOnlyDictionary<string, TLocation> found, string where, List<AdapterFailure> failures)
    {
        var selected = new List<(string, TLocation)>();
        foreach (var (name, location) in found.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            if (!Wanted(name)) continue;
            if (!IsValidName(name))
            {
                failures.Add(new(name, LoraAdapterReasons.InvalidAdapter, $"'{name}' cannot be used as an adapter (model) name; it must match {AdapterNames.Pattern}."));
                continue;
            }
            selected.Add((name, location));
        }
        foreach (var missing in Explicit?.Where(n => !found.ContainsKey(n)) ?? [])
            failures.Add(new(missing, LoraAdapterReasons.AdapterNotFound, $"no adapter '{missing}' in {where}."));
        return selected;
    }
}
