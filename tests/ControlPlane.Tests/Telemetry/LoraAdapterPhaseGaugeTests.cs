using System.Diagnostics.Metrics;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.ControlPlane.Tests.Reconciliation;
using HybridServing.TestKit;
using Microsoft.Extensions.DependencyInjection;

namespace HybridServing.ControlPlane.Tests.Telemetry;

/// <summary>
/// <c>hybridserving_controlplane_loraadapters{phase}</c> (the "adapters not Ready" alert's series) follows the
/// statuses the ControlPlane writes, read from this host's own meter while it reconciles real manifests.
/// </summary>
public sealed class LoraAdapterPhaseGaugeTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("cp-phases");
    private readonly List<FakeSidecar> _sidecars = [];
    private ControlPlaneHost? _host;

    private string Manifests => _dir.Combine("manifests");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Manifests);
        TestAdapters.Write(_dir.Combine("manifests", "adapters"), "support-en", 8);
        var sidecar = new FakeSidecar("engine-0", "node-0");
        await sidecar.StartAsync();
        _sidecars.Add(sidecar);
    }

    public async Task DisposeAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
        foreach (var s in _sidecars) await s.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task Counts_objects_by_phase_with_zeros_for_the_other_phases()
    {
        Manifests_.Write(Manifests, "good.yaml", Manifests_.Adapter("good", "./adapters", adapters: ["support-en"]));
        // An adapter name with no files behind it: the object cannot become Ready.
        Manifests_.Write(Manifests, "missing.yaml", Manifests_.Adapter("missing", "./adapters", adapters: ["no-such-adapter"]));
        _host = await ControlPlaneHost.StartAsync(Manifests, _sidecars);
        await _host.WaitForAsync("good", a => a.Status?.Phase == LoraAdapterPhases.Ready);
        var missing = await _host.WaitForAsync("missing", a => a.Status?.Phase is LoraAdapterPhases.Failed or LoraAdapterPhases.Pending);

        var counts = Read(_host);
        Assert.Equal(1, counts[LoraAdapterPhases.Ready]);
        Assert.Equal(1, counts[missing.Status!.Phase!]);
        Assert.Equal(2, counts.Values.Sum());
        Assert.Equal(6, counts.Count);

        // Removing an object's manifest removes it from the counts.
        File.Delete(Path.Combine(Manifests, "missing.yaml"));
        await ControlPlaneHost.WaitUntilAsync(() => Read(_host).Values.Sum() == 1, "the removed object to leave the counts");
        Assert.Equal(1, Read(_host)[LoraAdapterPhases.Ready]);
    }

    /// <summary>The gauge's current measurements from this host's meter (not another ControlPlane's in the same process).</summary>
    private static Dictionary<string, int> Read(ControlPlaneHost host)
    {
        var scope = host.App.Services.GetRequiredService<IMeterFactory>();
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Scope == scope && instrument.Name == "loraadapters") l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<int>((_, value, tags, _) =>
        {
            foreach (var tag in tags) if (tag.Key == "phase") counts[(string)tag.Value!] = value;
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return counts;
    }
}
