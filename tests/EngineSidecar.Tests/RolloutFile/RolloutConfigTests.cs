using HybridServing.EngineSidecar.RolloutFile;

namespace HybridServing.EngineSidecar.Tests.RolloutFile;

public sealed class RolloutConfigTests
{
    private static string Fixture => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "seed-002-configmap.yaml"));

    /// <summary>What Kubernetes mounts: the value of the ConfigMap's data key.</summary>
    internal static string MountedSeedFile()
    {
        var lines = Fixture.Split('\n');
        var start = Array.FindIndex(lines, l => l.Contains("configmap.yaml: |")) + 1;
        return string.Join('\n', lines[start..].Select(l => l.Length >= 6 ? l[6..] : l.Trim()));
    }

    [Fact]
    public void Lora_syncer_example_is_accepted_as_is_both_mounted_and_as_the_manifest()
    {
        foreach (var text in new[] { MountedSeedFile(), Fixture })
        {
            var config = LoraRolloutConfig.Parse(text, validate: true);
            Assert.Equal("vllm-llama3-8b", config.Name);
            Assert.Equal(new Uri("http://localhost:8000"), config.EngineUrl);
            Assert.Equal(["food-review-1", "food-review-2"], config.EnsureExist.Select(m => m.Id));
            var desired = config.Desired();
            Assert.All(desired, d => Assert.Equal("meta-llama/Llama-3.1-8B-Instruct", d.BaseModel));
            Assert.All(desired, d => Assert.Equal("Kawon/llama3.1-food-finetune_v14_r8", d.Source));
            Assert.Empty(config.EnsureNotExist);
        }
    }

    [Fact]
    public void Names_in_both_lists_are_reported_and_skipped()
    {
        var config = LoraRolloutConfig.Parse("""
            vLLMLoRAConfig:
              host: engine.local
              port: 8001
              defaultBaseModel: test/tiny
              ensureExist:
                models:
                - id: keep
                  source: /a/keep
                - id: both
                  source: /a/both
                  base-model: other/base
              ensureNotExist:
                models:
                - id: both
                  source: /a/both
                - id: gone
                  source: /a/gone
            """, validate: true);
        Assert.Equal(new Uri("http://engine.local:8001"), config.EngineUrl);
        Assert.Equal(["both"], config.Conflicts);
        Assert.Equal(["keep"], config.Desired().Select(d => d.Name));
        Assert.Equal(["both", "gone"], config.EnsureNotExist.Select(m => m.Id));
    }

    [Theory]
    [InlineData("other: 1", "no 'vLLMLoRAConfig'")]
    [InlineData("vLLMLoRAConfig: [", "not valid YAML")]
    [InlineData("vLLMLoRAConfig:\n  port: eighty", "'port' must be an integer")]
    [InlineData("vLLMLoRAConfig:\n  port: 70000", "'port' must be an integer")]
    [InlineData("vLLMLoRAConfig:\n  ensureExist: {}", "'ensureExist.models' is required")]
    [InlineData("vLLMLoRAConfig:\n  ensureExist:\n    models: x", "must be a list")]
    [InlineData("vLLMLoRAConfig:\n  ensureExist:\n    models:\n    - source: /a", "ensureExist.models[0].id is required")]
    [InlineData("vLLMLoRAConfig:\n  ensureExist:\n    models:\n    - id: a", "ensureExist.models[0].source is required")]
    [InlineData("vLLMLoRAConfig:\n  ensureExist:\n    models:\n    - id: ../x\n      source: /a", "path syntax")]
    [InlineData("vLLMLoRAConfig:\n  ensureExist:\n    models:\n    - {id: a, source: /a}\n    - {id: a, source: /b}", "lists 'a' 2 times")]
    [InlineData("", "empty")]
    public void Invalid_files_are_refused_with_the_field_named(string yaml, string expected) =>
        Assert.Contains(expected, Assert.Throws<FormatException>(() => LoraRolloutConfig.Parse(yaml, validate: true)).Message);

    [Fact]
    public void Without_validation_bad_entries_are_skipped_and_the_rest_applies()
    {
        var config = LoraRolloutConfig.Parse("vLLMLoRAConfig:\n  ensureExist:\n    models:\n    - id: ok\n      source: /a\n    - id: ../bad\n      source: /b\n", validate: false);
        Assert.Equal(["ok"], config.Desired().Select(d => d.Name));
        Assert.Contains(config.Warnings, w => w.Contains("path syntax"));
    }
}
