using System.Buffers.Binary;
using System.Text;
using HybridServing.Contracts.Metrics;
using HybridServing.Contracts.Peft;
using HybridServing.TestKit;
using Xunit.Abstractions;

namespace HybridServing.Contracts.Tests.Fuzz;

/// <summary>
/// Mutational fuzzing of the parsers that read files and answers from outside: PEFT <c>adapter_config.json</c>, the
/// safetensors header, and the Prometheus text format (seed corpora in <c>Fuzz/corpus/</c>). A malformed PEFT file may
/// only be a <see cref="PeftFormatException"/> (the sidecar turns it into a status reason); the Prometheus parser skips
/// bad lines and never throws.
/// </summary>
public sealed class ParserFuzzTests(ITestOutputHelper output)
{
    private void Report(FuzzReport report)
    {
        output.WriteLine(report.ToString());
        if (report.Problems() is { } problems) Assert.Fail(problems);
    }

    [Fact]
    public void Peft_configs_are_parsed_or_refused_with_PeftFormatException() =>
        Report(Fuzzer.Run("PEFT adapter_config.json", Fuzzer.Corpus("Contracts.Tests", "peft-config"), 30_000,
            json => PeftConfig.Parse(json), e => e is PeftFormatException));

    [Fact]
    public void Safetensors_headers_are_parsed_or_refused_with_PeftFormatException_and_accepted_tensors_lie_inside_the_data() =>
        Report(Fuzzer.Run("safetensors header", Fuzzer.Corpus("Contracts.Tests", "safetensors-header"), 30_000, json =>
        {
            foreach (var dataLength in new[] { 0L, 68, 131_072, long.MaxValue })
            {
                SafetensorsHeader header;
                try { header = SafetensorsHeader.Parse(json, dataLength); }
                catch (PeftFormatException) { continue; }
                foreach (var t in header.Tensors)
                    if (t.Begin < 0 || t.End < t.Begin || t.End > dataLength) throw new InvalidOperationException($"tensor {t.Name} [{t.Begin},{t.End}) outside {dataLength} bytes");
                _ = header.TensorBytes;
            }
            // The 8-byte length prefix, from the same bytes.
            if (json.Length >= 8)
            {
                try { SafetensorsHeader.ReadHeaderLength(json, BinaryPrimitives.ReadInt64LittleEndian(json) & long.MaxValue); }
                catch (PeftFormatException) { }
            }
        }));

    /// <summary>Crashes the fuzzer found (InvalidOperationException escaped instead of PeftFormatException), and a sibling.</summary>
    [Theory]
    [InlineData("eyJfX21ldGH/YXRhX29mZnNldHMiOls0LDY4XX19", "not valid Unicode")] // invalid UTF-8 in a name
    [InlineData("eyJhIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOltdLCJkYXRhX29mZnNldHMiOlswLDRdfSwiYiI6eyJkdHlwZSI6IlU4Iiwic2hhcGUiOlswLDNdLCJkYXRhX29mZnNldHMiOls0LDRdfSwiYyI6eyJkdHlwZSI6Ikk2NCIsIlx1ZDgwMHNoYXBlIjpbMiwyLDJdLCJkYXRhX29mZnNldHMiOls0LDY4XX19", "not valid Unicode")] // "\ud800shape"
    [InlineData("eyJhIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOltdLCJkYXRhX29mZnNldHMiOlsiMCIsNF19fQ==", "invalid data_offsets")] // {"a":{...,"data_offsets":["0",4]}}
    public void Fuzzer_found_safetensors_headers_are_PeftFormatExceptions(string base64, string message)
    {
        var e = Assert.Throws<PeftFormatException>(() => SafetensorsHeader.Parse(Convert.FromBase64String(base64), 131_072));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Prometheus_text_never_throws_and_every_sample_has_a_name() =>
        Report(Fuzzer.Run("Prometheus text", Fuzzer.Corpus("Contracts.Tests", "prometheus"), 30_000, bytes =>
        {
            foreach (var s in PrometheusText.Parse(Encoding.UTF8.GetString(bytes)))
                if (string.IsNullOrEmpty(s.Name) || s.Labels is null) throw new InvalidOperationException("a sample without a name");
        }));
}
