using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using HybridServing.Contracts.Resources;

namespace HybridServing.ControlPlane.Telemetry;

/// <summary>
/// <c>hybridserving_controlplane_loraadapters{phase}</c>: how many LoraAdapter objects are in each phase after the
/// last reconcile (every phase, zeros included, so "not Ready" alerts have a series to compare). Only the
/// reconciling replica reports counts; a standby reports none.
/// </summary>
internal sealed class LoraAdapterPhaseGauge : IDisposable
{
    private static readonly string[] Phases =
        [LoraAdapterPhases.Pending, LoraAdapterPhases.Loading, LoraAdapterPhases.Ready, LoraAdapterPhases.Partial, LoraAdapterPhases.Failed, LoraAdapterPhases.Deleting];

    private readonly Meter _meter;
    private volatile FrozenDictionary<string, int>? _counts;

    public LoraAdapterPhaseGauge(IMeterFactory meters)
    {
        _meter = meters.Create(ControlPlaneTelemetry.Name);
        _meter.CreateObservableGauge("loraadapters", Observe, "{loraadapter}", "LoraAdapter objects by status phase after the last reconcile.");
    }

    /// <summary>Replaces the counts with those of <paramref name="statuses"/> (one per object; no phase counts as Pending).</summary>
    public void Record(IEnumerable<LoraAdapterStatus> statuses)
    {
        var counts = Phases.ToDictionary(p => p, _ => 0, StringComparer.Ordinal);
        foreach (var status in statuses)
        {
            var phase = status.Phase ?? LoraAdapterPhases.Pending;
            counts[phase] = counts.GetValueOrDefault(phase) + 1;
        }
        _counts = counts.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private IEnumerable<Measurement<int>> Observe() =>
        _counts?.Select(c => new Measurement<int>(c.Value, new KeyValuePair<string, object?>("phase", c.Key))) ?? [];

    public void Dispose() => _meter.Dispose();
}
