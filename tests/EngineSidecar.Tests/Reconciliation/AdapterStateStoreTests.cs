using HybridServing.Contracts.OpenAi;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Reconciliation;
using HybridServing.EngineSidecar.Telemetry;
using Microsoft.Extensions.Time.Testing;
using Prometheus;

namespace HybridServing.EngineSidecar.Tests.Reconciliation;

/// <summary>The desired-set bookkeeping, without I/O and with a fake clock.</summary>
public sealed class AdapterStateStoreTests
{
    private static readonly FakeTimeProvider Time = new(new DateTimeOffset(2026, 11, 24, 12, 0, 0, TimeSpan.Zero));
    private static AdapterStateStore NewStore() => new(Time, new SidecarMetrics(Metrics.WithCustomRegistry(Metrics.NewCustomRegistry())));
    private static DesiredAdapter A(string name, string source = "/m/a", string? sha = null) => new(name, source, sha);

    private static void MarkLoaded(AdapterStateStore store, DesiredAdapter spec) =>
        Assert.True(store.Update(spec.Name, spec, r => { r.Phase = AdapterPhase.Loaded; r.LoadedFingerprint = spec.Fingerprint; }));

    [Fact]
    public void A_new_set_is_pending_and_invalid_entries_fail_at_once()
    {
        var store = NewStore();
        var statuses = store.SetDesired([A("ok"), A("../bad"), A("src", "ftp://x"), A("sha", "/m/a", "xyz")], 3, UnloadScope.AllUndesired);
        Assert.Equal(AdapterPhase.Pending, statuses[0].Phase);
        Assert.Equal(("InvalidName", AdapterPhase.Failed), (statuses[1].Reason, statuses[1].Phase));
        Assert.Equal("InvalidSource", statuses[2].Reason);
        Assert.Equal("InvalidSource", statuses[3].Reason);
        Assert.Equal(3, store.Generation);
        Assert.Equal(Time.GetUtcNow(), statuses[0].Updated.ToDateTimeOffset());
    }

    [Fact]
    public void An_unchanged_spec_stays_loaded_and_a_changed_one_goes_back_to_pending()
    {
        var store = NewStore();
        store.SetDesired([A("a"), A("b")], 1, UnloadScope.AllUndesired);
        MarkLoaded(store, A("a"));
        MarkLoaded(store, A("b"));
        var statuses = store.SetDesired([A("a"), A("b", "/m/b2")], 2, UnloadScope.AllUndesired);
        Assert.Equal(AdapterPhase.Loaded, statuses[0].Phase);
        Assert.Equal(AdapterPhase.Pending, statuses[1].Phase);
        Assert.Contains("spec changed", statuses[1].Message);
        // A new digest alone is a change too.
        Assert.Equal(AdapterPhase.Pending, store.AddDesired(A("a", "/m/a", new string('a', 64))).Phase);
    }

    [Fact]
    public void Dropping_a_loaded_adapter_keeps_it_as_unloading_until_the_engine_let_go()
    {
        var store = NewStore();
        store.SetDesired([A("loaded"), A("pending")], 1, UnloadScope.AllUndesired);
        MarkLoaded(store, A("loaded"));
        store.SetDesired([], 2, UnloadScope.AllUndesired);
        var list = store.List();
        var only = Assert.Single(list);
        Assert.Equal(("loaded", AdapterPhase.Unloading), (only.Name, only.Phase));
        store.Unloaded("loaded");
        Assert.Empty(store.List());
    }

    [Fact]
    public void Unload_of_an_unknown_name_is_remembered_as_explicit_and_reported_as_not_removed()
    {
        var store = NewStore();
        Assert.False(store.RemoveDesired("stranger"));
        Assert.Contains("stranger", store.Inputs().ExplicitUnloads);
        store.AddDesired(A("stranger"));
        Assert.DoesNotContain("stranger", store.Inputs().ExplicitUnloads);
        Assert.True(store.RemoveDesired("stranger"));
    }

    [Fact]
    public async Task Watchers_wake_on_changes_and_load_updates_that_differ_only_in_time_do_not_wake_them()
    {
        var store = NewStore();
        store.Snapshot(out var v0);
        var wait = store.WaitForChangeAsync(v0, CancellationToken.None);
        Assert.False(wait.IsCompleted);
        store.SetLoad(new EngineLoad { Healthy = true, Running = 1 });
        await wait.WaitAsync(TimeSpan.FromSeconds(1));

        store.Snapshot(out var v1);
        store.SetLoad(new EngineLoad { Healthy = true, Running = 1, Observed = Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(Time.GetUtcNow().AddSeconds(5)) });
        Assert.False(store.WaitForChangeAsync(v1, CancellationToken.None).IsCompleted);
        Assert.Equal(1, store.Snapshot(out _).Load.Running);
    }

    [Fact]
    public void Drift_is_a_loaded_adapter_missing_on_the_engine_or_an_unwanted_one_present()
    {
        var store = NewStore();
        store.SetDesired([A("a")], 1, UnloadScope.AllUndesired);
        MarkLoaded(store, A("a"));
        ModelCard Card(string id, string? parent) => new() { Id = id, Parent = parent, Root = "/m/" + id };
        var base_ = Card("test/tiny", null);
        Assert.False(EngineReconciler.Drifted([base_, Card("a", "test/tiny")], store.Inputs()));
        Assert.True(EngineReconciler.Drifted([base_], store.Inputs()));
        Assert.True(EngineReconciler.Drifted([base_, Card("a", "test/tiny"), Card("x", "test/tiny")], store.Inputs()));

        // File mode: only listed names are unloaded; others on the engine are left alone, conflicts are skipped.
        store.SetDesired([A("a")], 2, UnloadScope.Listed, listedForUnload: ["gone", "both"], skipped: ["both"]);
        Assert.False(EngineReconciler.Drifted([base_, Card("a", "test/tiny"), Card("x", "test/tiny"), Card("both", "test/tiny")], store.Inputs()));
        Assert.True(EngineReconciler.Drifted([base_, Card("a", "test/tiny"), Card("gone", "test/tiny")], store.Inputs()));

        // Before any declarative set, nothing foreign is unloaded.
        var fresh = NewStore();
        Assert.False(EngineReconciler.Drifted([base_, Card("x", "test/tiny")], fresh.Inputs()));
    }
}

public sealed class ResidencyParsingTests
{
    [Fact]
    public void Residency_is_read_from_the_proposed_metric_and_unknown_without_it()
    {
        var text = """
            vllm:num_requests_running{model_name="m",engine="0"} 2
            vllm:lora_adapter_loaded{adapter_name="a",level="gpu",pinned="false"} 1
            vllm:lora_adapter_loaded{adapter_name="b",level="cpu",pinned="true"} 1
            vllm:lora_adapter_loaded{adapter_name="c",level="cpu",pinned="false"} 1
            vllm:lora_adapter_loaded{adapter_name="c",level="gpu",pinned="false"} 1
            """;
        var snapshot = Contracts.Metrics.EngineLoadSnapshot.From(Contracts.Metrics.PrometheusText.Parse(text), Contracts.Metrics.EngineMetricNames.Vllm);
        Assert.Equal(new Dictionary<string, string> { ["a"] = "gpu", ["b"] = "cpu", ["c"] = "gpu" }, snapshot.Residency);
        Assert.Equal(2, snapshot.Running);
        var without = Contracts.Metrics.EngineLoadSnapshot.From(Contracts.Metrics.PrometheusText.Parse("vllm:num_requests_running 1"), Contracts.Metrics.EngineMetricNames.Vllm);
        Assert.Null(without.Residency);
    }
}
