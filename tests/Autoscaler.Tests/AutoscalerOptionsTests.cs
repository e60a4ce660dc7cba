using Microsoft.Extensions.Configuration;

namespace HybridServing.Autoscaler.Tests;

/// <summary>Configuration is bound from the documented keys, and a bad value fails at start naming its key.</summary>
public sealed class AutoscalerOptionsTests
{
    private static (AutoscalerOptions Options, IReadOnlyList<string> Errors) Bind(Dictionary<string, string?> settings)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var options = new AutoscalerOptions();
        config.GetSection(AutoscalerOptions.Section).Bind(options);
        var result = new AutoscalerOptionsValidator().Validate(null, options);
        return (options, result.Failed ? result.Failures!.ToList() : []);
    }

    [Fact]
    public void A_laptop_pool_binds_from_its_keys()
    {
        var (o, errors) = Bind(new()
        {
            ["Autoscaler:Interval"] = "00:00:01",
            ["Autoscaler:ControlPlaneUrl"] = "http://127.0.0.1:8081/",
            ["Autoscaler:GatewayUrls:0"] = "http://127.0.0.1:8080/",
            ["Autoscaler:Pools:default:MinEngines"] = "1",
            ["Autoscaler:Pools:default:MaxEngines"] = "3",
            ["Autoscaler:Pools:default:TargetConcurrencyPerEngine"] = "16",
            ["Autoscaler:Pools:default:SleepLevel"] = "2",
            ["Autoscaler:Pools:default:Engines:0"] = "http://127.0.0.1:8000/",
            ["Autoscaler:Pools:default:Engines:1"] = "http://127.0.0.1:8001/",
            ["Autoscaler:Pools:default:Engines:2"] = "http://127.0.0.1:8002/",
        });
        Assert.Empty(errors);
        var pool = o.Pools["default"];
        Assert.Equal(ActuatorKind.Sleep, pool.Actuator);
        Assert.Equal(3, pool.Engines.Count);
        Assert.Equal(2, pool.SleepLevel);
        var policy = pool.ToPolicy("default");
        Assert.Equal(16, policy.TargetConcurrencyPerEngine);
        Assert.Equal((1, 3), (policy.MinEngines, policy.MaxEngines));
    }

    [Theory]
    [InlineData("Autoscaler:Pools:default:MinEngines", "5", "Autoscaler:Pools:default:MinEngines (5) must not exceed MaxEngines (2).")]
    [InlineData("Autoscaler:Pools:default:MaxEngines", "3", "Autoscaler:Pools:default:MaxEngines (3) exceeds the 2 engines listed in Engines.")]
    [InlineData("Autoscaler:Pools:default:TargetConcurrencyPerEngine", "0", "Autoscaler:Pools:default:TargetConcurrencyPerEngine must be positive (got 0).")]
    [InlineData("Autoscaler:Pools:default:PanicWindow", "00:02:00", "Autoscaler:Pools:default:PanicWindow must be positive and no longer than StableWindow (got 00:02:00 and 00:01:00).")]
    [InlineData("Autoscaler:Pools:default:SleepLevel", "3", "Autoscaler:Pools:default:SleepLevel must be 1 or 2 (got 3).")]
    [InlineData("Autoscaler:Pools:default:MaxScaleUpRate", "1", "Autoscaler:Pools:default:MaxScaleUpRate must be above 1 (got 1).")]
    [InlineData("Autoscaler:Interval", "00:00:00", "Autoscaler:Interval must be positive (got 00:00:00).")]
    [InlineData("Autoscaler:Pools:default:Actuator", "Deployment", "Autoscaler:Pools:default:DeploymentName is required for the Deployment actuator.")]
    public void A_bad_value_is_refused_naming_the_key(string key, string value, string expected)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Autoscaler:Pools:default:MaxEngines"] = "2",
            ["Autoscaler:Pools:default:Engines:0"] = "http://127.0.0.1:8000/",
            ["Autoscaler:Pools:default:Engines:1"] = "http://127.0.0.1:8001/",
            [key] = value,
        };
        var (_, errors) = Bind(settings);
        Assert.Contains(expected, errors);
    }

    [Theory]
    [InlineData("Autoscaler:Prometheus:Url", "ftp://prometheus:9090/", "Autoscaler:Prometheus:Url must be an absolute http(s) URL (got 'ftp://prometheus:9090/').")]
    [InlineData("Autoscaler:GatewayUrls:0", "http://127.0.0.1:8080/", "Autoscaler:GatewayUrls must be empty when Autoscaler:Prometheus:Url is set: the gateways' signals come from Prometheus then.")]
    [InlineData("Autoscaler:Prometheus:Queries:Running", " ", "Autoscaler:Prometheus:Queries:Running must be a PromQL query.")]
    [InlineData("Autoscaler:Prometheus:GatewaySelector", "{job=\"gateway\"}", "Autoscaler:Prometheus:GatewaySelector must be label matchers without braces, e.g. job=\"gateway\" (got '{job=\"gateway\"}').")]
    [InlineData("Autoscaler:Pools:default:PrometheusSelector", "{pool=\"a\"}", "Autoscaler:Pools:default:PrometheusSelector must be label matchers without braces, e.g. pool=\"default\" (got '{pool=\"a\"}').")]
    public void A_bad_prometheus_value_is_refused_naming_the_key(string key, string value, string expected)
    {
        var (_, errors) = Bind(new()
        {
            ["Autoscaler:Prometheus:Url"] = "http://127.0.0.1:9090/",
            ["Autoscaler:Pools:default:Engines:0"] = "http://127.0.0.1:8000/",
            [key] = value,
        });
        Assert.Equal([expected], errors);
    }

    [Fact]
    public void A_prometheus_deployment_pool_needs_no_controlplane_and_binds_its_queries()
    {
        var (o, errors) = Bind(new()
        {
            ["Autoscaler:Prometheus:Url"] = "http://prometheus:9090/",
            ["Autoscaler:Prometheus:Queries:Waiting"] = "sum(vllm:num_requests_waiting{$pool}) * 2",
            ["Autoscaler:Pools:gpu:Actuator"] = "Deployment",
            ["Autoscaler:Pools:gpu:DeploymentNamespace"] = "llm",
            ["Autoscaler:Pools:gpu:DeploymentName"] = "engines",
            ["Autoscaler:Pools:gpu:PrometheusSelector"] = "namespace=\"llm\",app=\"engines\"",
        });
        Assert.Empty(errors);
        Assert.Equal("sum(vllm:num_requests_waiting{$pool}) * 2", o.Prometheus.Queries.Waiting);
        Assert.Equal("sum(vllm:num_requests_running{$pool})", o.Prometheus.Queries.Running);
    }

    [Fact]
    public void No_pool_is_an_error()
    {
        var (_, errors) = Bind(new());
        Assert.Equal(["Autoscaler:Pools must name at least one pool."], errors);
    }
}
