// FINN's StreamingSplit: each pixel's channels (SIMD per beat) divided among N outputs.
//
// Output k takes the next FOLDS[k] beats of every pixel, in output order; FOLDS entry
// k sits at [k*16 +: 16]. One registered beat with a valid per output: a beat enters
// once the one held (if any) is taken, one beat per cycle at full rate.
module split_stream #(
    parameter int WIDTH = 8,
    parameter int N     = 2,
    parameter logic [N*16-1:0] FOLDS = '0
) (
    input  logic             clk,
    input  logic             rst_n,
    input  logic [WIDTH-1:0] in_tdata,
    input  logic             in_tvalid,
    output logic             in_tready,
    output logic [WIDTH-1:0] out_tdata,
    output logic [N-1:0]     out_tvalid,
    input  logic [N-1:0]     out_tready
);
    localparam int SW = $clog2(N > 1 ? N : 2);

    logic [SW-1:0] sel;
    logic [15:0]   j;
    logic          fire, chunk_end;

    assign in_tready = (out_tvalid & ~out_tready) == '0;
    assign fire      = in_tvalid && in_tready;
    assign chunk_end = j == FOLDS[sel*16 +: 16] - 16'd1;

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            sel <= '0; j <= '0; out_tvalid <= '0;
        end else begin
            out_tvalid <= fire ? N'(1) << sel : out_tvalid & ~out_tready;
            if (fire) begin
                j <= chunk_end ? '0 : j + 16'd1;
                if (chunk_end) sel <= sel == SW'(N - 1) ? '0 : sel + 1'b1;
            end
        end
        if (fire) out_tdata <= in_tdata;
    end
endmodule
