using System.Text.Json;
using System.Text.Json.Nodes;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Kubernetes;
using HybridServing.KubeApiTestServer;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using static HybridServing.ControlPlane.Tests.Kubernetes.KubeHarness;

namespace HybridServing.ControlPlane.Tests.Kubernetes;

public sealed class MutationBudgetTests
{
    [Fact]
    public async Task Allows_a_burst_then_the_average_rate()
    {
        var time = new FakeTimeProvider();
        var budget = new MutationBudget(rate: 10, burst: 3, time);
        Assert.True(budget.TryTake());
        Assert.True(budget.TryTake());
        Assert.True(budget.TryTake());
        Assert.False(budget.TryTake());

        var waiting = budget.TakeAsync(CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(99));
        Assert.False(waiting.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(2));
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));

        // A second's worth of tokens, never more than the burst.
        time.Advance(TimeSpan.FromSeconds(60));
        var taken = 0;
        while (budget.TryTake()) taken++;
        Assert.Equal(3, taken);
        Assert.Equal(7, budget.Spent);
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(-1, 1)]
    [InlineData(5, 0)]
    public void Refuses_a_budget_that_allows_nothing(double rate, int burst) =>
        Assert.ThrowsAny<ArgumentOutOfRangeException>(() => new MutationBudget(rate, burst, TimeProvider.System));
}

public sealed class StatusJsonTests
{
    private static JsonElement Stored(LoraAdapterStatus s) => JsonDocument.Parse(KubernetesJson.Serialize(s)).RootElement.Clone();

    [Fact]
    public void Keeps_the_stored_transition_time_while_a_condition_keeps_its_status()
    {
        var old = Status(LoraAdapterPhases.Ready, "a");
        old.Conditions![0].LastTransitionTime = new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        var fresh = Status(LoraAdapterPhases.Ready, "a");
        var normalized = StatusJson.Normalize(fresh, Stored(old));
        Assert.Equal("2026-01-02T03:04:05Z", normalized["conditions"]![0]!["lastTransitionTime"]!.GetValue<string>());
        Assert.True(StatusJson.Same(normalized, Stored(old)));
    }

    [Fact]
    public void A_condition_that_flipped_gets_the_new_time_and_is_a_change()
    {
        var old = Status(LoraAdapterPhases.Loading);
        old.Conditions![0].LastTransitionTime = new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        var normalized = StatusJson.Normalize(Status(LoraAdapterPhases.Ready, "a"), Stored(old));
        Assert.NotEqual("2026-01-02T03:04:05Z", normalized["conditions"]![0]!["lastTransitionTime"]!.GetValue<string>());
        Assert.False(StatusJson.Same(normalized, Stored(old)));
    }

    [Fact]
    public void Times_are_compared_in_whole_seconds_as_the_api_server_keeps_them()
    {
        var s = Status(LoraAdapterPhases.Failed);
        s.FailedAdapters = [new FailedAdapter { Name = "a", Reason = "LoadFailed", NextRetryTime = new DateTime(2026, 5, 6, 7, 8, 9, 987, DateTimeKind.Utc) }];
        var normalized = StatusJson.Normalize(s, null);
        Assert.Equal("2026-05-06T07:08:09Z", normalized["failedAdapters"]![0]!["nextRetryTime"]!.GetValue<string>());
        var truncated = JsonNode.Parse(normalized.ToJsonString())!;
        Assert.True(StatusJson.Same(normalized, JsonDocument.Parse(truncated.ToJsonString()).RootElement));
        Assert.False(StatusJson.Same(normalized, null));
    }

    [Fact]
    public void Message_text_that_contains_a_time_is_left_alone()
    {
        var s = Status(LoraAdapterPhases.Failed);
        s.Conditions![0].Message = "Next attempt at 2026-05-06T07:08:09.9870000Z.";
        Assert.Equal("Next attempt at 2026-05-06T07:08:09.9870000Z.", StatusJson.Normalize(s, null)["conditions"]![0]!["message"]!.GetValue<string>());
    }
}

public sealed class KubernetesHomeOptionsTests
{
    [Theory]
    [InlineData("hybridserving.io/role=engine")]
    [InlineData("app in (vllm, sglang),tier!=cpu")]
    [InlineData("gpu,!maintenance")]
    [InlineData("role==engine")]
    public void Accepts_label_selectors(string selector) => Assert.Null(KubernetesHomeOptionsValidator.LabelSelectorError(selector));

    [Theory]
    [InlineData("", "empty")]
    [InlineData("role=engine,", "empty requirement")]
    [InlineData("app in (vllm", "not closed")]
    [InlineData("app)", "no matching")]
    [InlineData("role=en gine", "'role=en gine' is not a requirement")]
    public void Refuses_broken_selectors_saying_why(string selector, string expected) =>
        Assert.Contains(expected, KubernetesHomeOptionsValidator.LabelSelectorError(selector));

    [Fact]
    public void Every_wrong_setting_is_named()
    {
        var result = new KubernetesHomeOptionsValidator().Validate(null, new KubernetesHomeOptions
        {
            EngineSelector = "",
            SidecarGrpcPortAnnotation = " ",
            DefaultSidecarGrpcPort = 0,
            ApiServerUrl = "ftp://x",
            LeaseDuration = TimeSpan.FromSeconds(2),
            RenewDeadline = TimeSpan.FromSeconds(3),
            RetryPeriod = TimeSpan.FromSeconds(4),
            MutationsPerSecond = 0,
            MutationBurst = 0,
            ListPageSize = 0,
        });
        Assert.True(result.Failed);
        foreach (var key in new[] { "EngineSelector", "SidecarGrpcPortAnnotation", "DefaultSidecarGrpcPort", "ApiServerUrl", "RenewDeadline", "RetryPeriod", "MutationsPerSecond", "MutationBurst", "ListPageSize" })
            Assert.Contains($"ControlPlane:Kubernetes:{key}", result.FailureMessage);
        Assert.True(new KubernetesHomeOptionsValidator().Validate(null, new KubernetesHomeOptions()).Succeeded);
    }
}

public sealed class AdapterEventsTests
{
    [Fact]
    public async Task The_same_event_is_recorded_once_per_interval_and_waits_for_the_budget()
    {
        await using var server = await KubeApiServer.StartAsync();
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var options = FastOptions(o => o.EventInterval = TimeSpan.FromMinutes(1));
        var events = new AdapterEvents(ApiFor(server), options, "replica-a", time, NullLogger.Instance);
        var e = new AdapterEvent(Ns, "sql", "uid-1", "Warning", "LoadFailed", "Reconcile", "Ready -> Failed: engine refused");

        Assert.True(events.Record(e));
        Assert.False(events.Record(e));
        Assert.True(events.Record(e with { Reason = "AllLoaded", Type = "Normal" }));
        var budget = new MutationBudget(1, 1, time);
        await events.DrainAsync(budget, CancellationToken.None);
        Assert.Equal(1, events.Sent); // the second waits for a token
        Assert.True(events.HasPending);
        time.Advance(TimeSpan.FromSeconds(1));
        await events.DrainAsync(budget, CancellationToken.None);
        Assert.Equal(2, events.Sent);

        time.Advance(TimeSpan.FromMinutes(1));
        Assert.True(events.Record(e));

        var stored = server.List<Eventsv1Event>(Ns);
        Assert.Equal(2, stored.Count);
        var first = stored.Single(x => x.Reason == "LoadFailed");
        Assert.Equal("Warning", first.Type);
        Assert.Equal("sql", first.Regarding.Name);
        Assert.Equal(LoraAdapter.KindName, first.Regarding.Kind);
        Assert.Equal("uid-1", first.Regarding.Uid);
        Assert.Equal("replica-a", first.ReportingInstance);
        Assert.NotNull(first.EventTime);
    }

    [Fact]
    public void Transitions_choose_type_and_reason_from_the_Ready_condition()
    {
        Assert.Null(AdapterEvents.ForTransition(Ns, "x", null, Status(LoraAdapterPhases.Ready, "a"), Status(LoraAdapterPhases.Ready, "a")));
        var ready = AdapterEvents.ForTransition(Ns, "x", null, Status(LoraAdapterPhases.Loading), Status(LoraAdapterPhases.Ready, "a"))!;
        Assert.Equal(("Normal", LoraAdapterReasons.AllLoaded), (ready.Type, ready.Reason));
        Assert.StartsWith("Loading -> Ready", ready.Note);
        var failed = Status(LoraAdapterPhases.Failed);
        failed.Conditions![0].Reason = LoraAdapterReasons.InvalidSpec;
        var bad = AdapterEvents.ForTransition(Ns, "x", null, null, failed)!;
        Assert.Equal(("Warning", LoraAdapterReasons.InvalidSpec), (bad.Type, bad.Reason));
    }

    [Fact]
    public async Task Events_beyond_the_queue_capacity_drop_the_oldest()
    {
        await using var server = await KubeApiServer.StartAsync();
        var events = new AdapterEvents(ApiFor(server), FastOptions(o => o.EventQueueCapacity = 2), "r", TimeProvider.System, NullLogger.Instance);
        for (var i = 0; i < 5; i++) events.Record(new AdapterEvent(Ns, $"o{i}", null, "Normal", "AllLoaded", "Reconcile", "n"));
        Assert.Equal(3, events.Dropped);
        await events.DrainAsync(new MutationBudget(100, 100, TimeProvider.System), CancellationToken.None);
        Assert.Equal(["o3", "o4"], server.List<Eventsv1Event>(Ns).Select(e => e.Regarding.Name).Order());
    }
}

public sealed class DeclarationTests
{
    [Fact]
    public async Task An_object_with_a_field_of_the_wrong_type_stays_in_the_picture_with_a_read_error_naming_the_field()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(new JsonObject
        {
            ["apiVersion"] = LoraAdapter.ApiVersionValue,
            ["kind"] = LoraAdapter.KindName,
            ["metadata"] = new JsonObject { ["name"] = "broken", ["namespace"] = Ns },
            ["spec"] = new JsonObject
            {
                ["baseModel"] = "test/tiny",
                ["adapterSource"] = new JsonObject { ["type"] = "local", ["repository"] = "/a" },
                ["deploymentConfig"] = new JsonObject { ["replicas"] = new JsonObject { ["min"] = "two" } },
            },
        });
        server.Seed(Adapter("fine"));
        await using var home = Home(server);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Adapters.Count == 2, "both objects in the picture");
        var broken = home.Current.Adapters.Single(a => a.Resource.Metadata.Name == "broken");
        Assert.StartsWith("spec.deploymentConfig.replicas.min:", broken.ReadError);
        Assert.Equal("LoraAdapter team-a/broken", broken.Origin);
        Assert.Null(home.Current.Adapters.Single(a => a.Resource.Metadata.Name == "fine").ReadError);
    }

    [Fact]
    public async Task Status_writes_alone_do_not_wake_the_reconciler_but_spec_changes_do()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(Adapter("sql"));
        await using var home = Home(server);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Adapters.Count == 1, "the first picture");
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Metadata.Finalizers?.Count == 1, "finalizer");
        var changed = 0;
        home.Changed += () => Interlocked.Increment(ref changed);
        await home.WriteStatusAsync([WithStatus(home.Current.Adapters[0].Resource, Status(LoraAdapterPhases.Ready, "a"))], CancellationToken.None);
        await WaitUntilAsync(() => home.StatusWrites == 1, "written");
        await Task.Delay(150);
        Assert.Equal(0, changed);

        var obj = server.Get<LoraAdapter>(Ns, "sql")!;
        obj.Spec.BaseModel = "other/model";
        await client.CustomObjects.ReplaceNamespacedCustomObjectAsync(obj, LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "sql");
        await WaitUntilAsync(() => changed >= 1 && home.Current.Adapters[0].Resource.Spec.BaseModel == "other/model", "the spec change is announced");
        Assert.Equal(2, home.Current.Adapters[0].Resource.Metadata.Generation);
    }
}
