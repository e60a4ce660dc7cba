using System.Text.Json;
using HybridServing.MockEngine;
using HybridServing.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace HybridServing.Autoscaler.Tests;

/// <summary>The service as Program.cs composes it: real host, real Kestrel, real MockEngines.</summary>
public sealed class AutoscalerServiceTests
{
    private static WebApplication Build(Dictionary<string, string?> settings, int port)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Configuration.AddInMemoryCollection(settings);
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.AddServiceDefaults();
        builder.AddAutoscaler();
        var app = builder.Build();
        app.MapAutoscaler();
        app.MapDefaultEndpoints();
        return app;
    }

    [Fact]
    public async Task Puts_an_idle_engine_to_sleep_and_reports_the_decision_in_status_and_metrics()
    {
        var devMode = new MockEngineHostOptions { Environment = new Dictionary<string, string> { [MockEngineCommandLine.ServerDevModeVariable] = "1" } };
        await using var e1 = await MockEngineHost.StartAsync(devMode, "--model", TestAdapters.TinyModel, "--enable-sleep-mode");
        await using var e2 = await MockEngineHost.StartAsync(devMode, "--model", TestAdapters.TinyModel, "--enable-sleep-mode");
        var port = Ports.GetFree();
        await using var app = Build(new()
        {
            ["Autoscaler:Interval"] = "00:00:00.200",
            ["Autoscaler:Pools:default:MinEngines"] = "1",
            ["Autoscaler:Pools:default:MaxEngines"] = "2",
            ["Autoscaler:Pools:default:StableWindow"] = "00:00:01",
            ["Autoscaler:Pools:default:PanicWindow"] = "00:00:00.500",
            ["Autoscaler:Pools:default:ScaleDownDelay"] = "00:00:00",
            ["Autoscaler:Pools:default:ScaleDownStabilization"] = "00:00:00.500",
            ["Autoscaler:Pools:default:Engines:0"] = e1.BaseUrl.ToString(),
            ["Autoscaler:Pools:default:Engines:1"] = e2.BaseUrl.ToString(),
        }, port);
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };

        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            using var doc = JsonDocument.Parse(await http.GetStringAsync("v1/status"));
            var pools = doc.RootElement.GetProperty("pools");
            if (pools.GetArrayLength() == 1 && pools[0].GetProperty("current").GetInt32() == 1 && pools[0].GetProperty("desired").GetInt32() == 1)
            {
                Assert.Equal("default", pools[0].GetProperty("pool").GetString());
                // The configuration in force is shown next to the decision.
                var policy = pools[0].GetProperty("policy");
                Assert.Equal("00:00:01", policy.GetProperty("stableWindow").GetString());
                Assert.Equal("00:00:00.5000000", policy.GetProperty("scaleDownStabilization").GetString());
                Assert.Equal(2, policy.GetProperty("maxEngines").GetInt32());
                Assert.Equal("Sleep", policy.GetProperty("actuator").GetString());
                Assert.Equal("00:00:00.2000000", doc.RootElement.GetProperty("interval").GetString());
                // What the pool did is kept past the pass that did it: the drain once (not every pass), then the sleep.
                var recent = pools[0].GetProperty("recent").EnumerateArray().Select(a => a.GetProperty("action").GetString()!).ToList();
                Assert.Equal(["scaling down to 1 (draining)", $"slept {e2.BaseUrl} (level 1)"], recent);
                break;
            }
            Assert.True(DateTime.UtcNow < deadline, "the idle engine was never put to sleep: " + pools);
            await Task.Delay(100);
        }
        using (var sleeping = JsonDocument.Parse(await new HttpClient().GetStringAsync(new Uri(e2.BaseUrl, "is_sleeping"))))
            Assert.True(sleeping.RootElement.GetProperty("is_sleeping").GetBoolean());
        var metrics = await http.GetStringAsync("metrics");
        // The exact series name at the start of a line (the meter adapter once exported it with its prefix doubled).
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("hybridserving_autoscaler_desired_engines{pool=\"default\"} 1", StringComparison.Ordinal));
        await app.StopAsync();
    }

    [Fact]
    public async Task Invalid_configuration_stops_the_start_naming_the_key()
    {
        await using var app = Build(new()
        {
            ["Autoscaler:Pools:default:MaxEngines"] = "0",
            ["Autoscaler:Pools:default:Engines:0"] = "http://127.0.0.1:1/",
        }, Ports.GetFree());
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("Autoscaler:Pools:default:MaxEngines must be at least 1 (got 0).", e.Failures);
    }

    [Theory]
    [InlineData("Autoscaler:Pools:default:StableWindw", "00:00:05", "Autoscaler:Pools:default:StableWindw is not an Autoscaler configuration key (see Autoscaler/README.md).")]
    [InlineData("Autoscaler:Intervall", "00:00:01", "Autoscaler:Intervall is not an Autoscaler configuration key (see Autoscaler/README.md).")]
    [InlineData("Autoscaler:Prometheus:Queries:Runing", "sum(x)", "Autoscaler:Prometheus:Queries:Runing is not an Autoscaler configuration key (see Autoscaler/README.md).")]
    [InlineData("Autoscaler:Pools:default:StableWindow", "five seconds", "Autoscaler:Pools:default:StableWindow: 'five seconds' is not a duration (hh:mm:ss, e.g. 00:00:30).")]
    [InlineData("Autoscaler:Pools:default:MinEngines", "one", "Autoscaler:Pools:default:MinEngines: 'one' is not a whole number.")]
    [InlineData("Autoscaler:Pools:default:Actuator", "Sleeep", "Autoscaler:Pools:default:Actuator: 'Sleeep' is not one of Sleep, Deployment.")]
    [InlineData("Autoscaler:Pools:default:Engines:1", "engine-1", "Autoscaler:Pools:default:Engines:1: 'engine-1' is not an absolute URL.")]
    [InlineData("Autoscaler:Pools:default:LoraAware", "yes", "Autoscaler:Pools:default:LoraAware: 'yes' is not true or false.")]
    public async Task A_key_that_binds_to_nothing_or_a_value_that_does_not_parse_stops_the_start_naming_it(string key, string value, string expected)
    {
        await using var app = Build(new()
        {
            ["Autoscaler:Pools:default:MaxEngines"] = "1",
            ["Autoscaler:Pools:default:Engines:0"] = "http://127.0.0.1:1/",
            ["Autoscaler:Pools:default:EngineSelector:pool"] = "default",
            ["Autoscaler:Kubernetes:ApiServerUrl"] = "http://127.0.0.1:1/",
            [key] = value,
        }, Ports.GetFree());
        var e = await Assert.ThrowsAnyAsync<Exception>(() => app.StartAsync());
        var failures = Assert.IsType<OptionsValidationException>(e).Failures.ToList();
        Assert.True(failures.Contains(expected), string.Join(" | ", failures));
    }
}
