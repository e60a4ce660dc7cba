using System.Text;
using HybridServing.EngineSidecar.RolloutFile;
using HybridServing.TestKit;
using Xunit.Abstractions;

namespace HybridServing.EngineSidecar.Tests.Fuzz;

/// <summary>
/// Mutational fuzzing of the lora-syncer rollout file (<c>vLLMLoRAConfig</c>, bare or inside a ConfigMap manifest):
/// <see cref="LoraRolloutConfig.Parse"/> refuses a bad file only with <see cref="FormatException"/> (the sidecar reports
/// it and keeps the last good file), in both strict and lenient mode, and whatever it accepted can be used: the desired
/// set, the unload list, the conflicts and the engine URL never throw.
/// </summary>
public sealed class RolloutConfigFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void Rollout_files_are_read_or_refused_with_a_FormatException_never_a_crash()
    {
        var report = Fuzzer.Run("lora-syncer ConfigMap", Fuzzer.Corpus("EngineSidecar.Tests", "rollout-configmap"), 20_000, bytes =>
        {
            var text = Encoding.UTF8.GetString(bytes);
            foreach (var validate in new[] { true, false })
            {
                LoraRolloutConfig config;
                try { config = LoraRolloutConfig.Parse(text, validate); }
                catch (FormatException) { continue; }
                _ = config.Desired().Count + config.ToUnload.Count + config.Conflicts.Count;
                _ = config.EngineUrl;
            }
        });
        output.WriteLine(report.ToString());
        if (report.Problems() is { } problems) Assert.Fail(problems);
    }

    /// <summary>Found by the fuzzer: YamlDotNet threw ArgumentException (not YamlException) for this stream, and a
    /// ConfigMap whose data entry is broken YAML threw YamlException out of Parse: the sidecar's file watcher died
    /// instead of reporting the file. Both are now a FormatException saying the YAML is invalid.</summary>
    [Theory]
    [InlineData("dkxMTUxvUkFDb25maWc6CiAgbmFtZTogcG9vbAogIHBvcnQ6IDgwMDAKICBlbnN1cmVFeGlzdDoKICAgIG1vZGVsczoKICAgIC0gOiBzcWwKICAgICAgc291cmNlOiAvYWRhcHRlcnMvc3FsCiAgICAgIGJhc2UtbW9kZWw6IHRlc3QvdGlueQogICAgLSBpZDogaHViCiAgICAgIHNvdXJjZTogaGY6Ly9v6C+XcmcvbG9yYXMvY2hhdEB2MgogIGVuc3VyZU5vdEV4aXN0OgogICAgbW9kZWxzOgogICAgLSBpZDogb2xkCiAgICAgIHNvdXJjZTogczM6Ly9idWNrZXQvb2xkCg==", "The file is not valid YAML")]
    [InlineData("YXBpVmVyc2lvbjogdjEKa2luZDogQ29uZmlnTWFwCmRhdGE6CiAgY29uZmlnbWFwLnlhbWw6ICJ2TExNTG9SQUNvbmZpZzogWyIK", "The ConfigMap's data entry is not valid YAML")]
    public void Yaml_the_parser_chokes_on_is_a_FormatException(string base64, string expected)
    {
        var text = Encoding.UTF8.GetString(Convert.FromBase64String(base64));
        foreach (var validate in new[] { true, false })
            Assert.StartsWith(expected, Assert.Throws<FormatException>(() => LoraRolloutConfig.Parse(text, validate)).Message);
    }

    /// <summary>Found by the fuzzer: in lenient mode a host that is not a host name was kept, and EngineUrl threw
    /// UriFormatException. Now it is a warning and the default host is used; strict mode refuses the file.</summary>
    [Fact]
    public void A_bad_host_is_a_warning_in_lenient_mode_and_a_refusal_in_strict_mode()
    {
        const string yaml = "vLLMLoRAConfig:\n  host: engine.+Inflocal\n  port: 8001\n";
        var lenient = LoraRolloutConfig.Parse(yaml, validate: false);
        Assert.Contains(lenient.Warnings, w => w.Contains("'host' 'engine.+Inflocal' is not a valid host name", StringComparison.Ordinal));
        Assert.Equal(new Uri("http://localhost:8001/"), lenient.EngineUrl);
        Assert.Contains("'host'", Assert.Throws<FormatException>(() => LoraRolloutConfig.Parse(yaml, validate: true)).Message);
    }

    [Fact]
    public void An_IPv6_host_gets_its_brackets_in_the_engine_url() =>
        Assert.Equal(new Uri("http://[::1]:8000/"), LoraRolloutConfig.Parse("vLLMLoRAConfig:\n  host: \"::1\"\n", validate: true).EngineUrl);
}
